package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

var sizes = []int{64, 1 << 10, 8 << 10}

// relay starts a relay and one acking device; it returns the relay and the
// device's token.
func relay(b *testing.B) (*relaytest.Relay, string) {
	b.Helper()
	r := relaytest.Start(b, func(c *server.Config) { c.MaxInflight = 1024 })
	tok := wire.NewToken()
	ack := []byte(`{"ok":true}`)
	r.Dial(b, tok, device.HandlerFunc(func(context.Context, string, []byte) (int, []byte) { return 200, ack }))
	return r, tok
}

func body(n int) []byte {
	prefix := `{"text":"`
	return []byte(prefix + strings.Repeat("x", n-len(prefix)-2) + `"}`)
}

// latencies records one sample per operation and reports percentiles.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	b.ReportMetric(float64(l[len(l)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkDeliverQUIC measures router -> QUIC stream -> device -> reply,
// one message at a time: the relay's own latency without HTTP.
func BenchmarkDeliverQUIC(b *testing.B) {
	r, tok := relay(b)
	key := router.KeyOf([]byte(tok))
	for _, n := range sizes {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			m := router.Message{Mode: "notify", Body: body(n)}
			lat := make(latencies, 0, b.N)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				rep, err := r.Router().Deliver(ctx, key, m)
				cancel()
				if err != nil || rep.Status != 200 {
					b.Fatalf("deliver: %v %d", err, rep.Status)
				}
				lat = append(lat, time.Since(start))
			}
			lat.report(b)
		})
	}
}

// BenchmarkWebhookHTTPS measures the whole path a caller sees: HTTPS POST
// -> fasthttp frontend -> router -> QUIC -> device -> reply -> response,
// sequentially over one keep-alive connection.
func BenchmarkWebhookHTTPS(b *testing.B) {
	r, tok := relay(b)
	client := &fasthttp.HostClient{Addr: r.Addr, IsTLS: true, TLSConfig: r.TLS}
	url := r.URL("notify", tok)
	for _, n := range sizes {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.SetBody(body(n))
			lat := make(latencies, 0, b.N)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Fatalf("post: %v %d %s", err, resp.StatusCode(), resp.Body())
				}
				lat = append(lat, time.Since(start))
			}
			lat.report(b)
		})
	}
	client.CloseIdleConnections()
}

// BenchmarkWebhookHTTPSParallel is the same path with concurrent callers:
// throughput rather than latency.
func BenchmarkWebhookHTTPSParallel(b *testing.B) {
	r, tok := relay(b)
	client := &fasthttp.HostClient{Addr: r.Addr, IsTLS: true, TLSConfig: r.TLS, MaxConns: 64}
	url := r.URL("notify", tok)
	payload := body(256)
	b.SetParallelism(8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(url)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetBody(payload)
		for pb.Next() {
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Errorf("post: %v %d", err, resp.StatusCode())
				return
			}
		}
	})
	client.CloseIdleConnections()
}
