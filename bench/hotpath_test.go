package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

var sizes = []int{64, 1 << 10, 8 << 10}

// transports are the device transports every hot-path benchmark compares.
var transports = []struct {
	name string
	opt  device.Options
}{
	{"quic", device.Options{}},
	{"webtransport", device.Options{Transport: transport.KindWebTransport}},
	{"websocket", device.Options{Transport: transport.KindWebSocket}},
}

var ack = []byte(`{"ok":true}`)

func acker(context.Context, wire.Message) (int, []byte) { return 200, ack }

// relay starts a relay and, per transport, one acking device; it returns
// the relay and the devices' tokens by transport name.
func relay(b *testing.B) (*relaytest.Relay, map[string]string) {
	b.Helper()
	// Thousands of webhooks a second to one token from one address: the
	// rate limits would measure themselves, not the hot path.
	r := relaytest.Start(b, func(c *server.Config) {
		c.Session.MaxInflight = 1024
		relaytest.NoLimits(c)
	})
	tokens := make(map[string]string)
	for _, tr := range transports {
		tokens[tr.name] = wire.NewToken()
		r.DialWith(b, tokens[tr.name], device.HandlerFunc(acker), tr.opt)
	}
	return r, tokens
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

// BenchmarkDeliver measures router -> device stream -> device -> reply, one
// message at a time: the relay's own latency without HTTP.
func BenchmarkDeliver(b *testing.B) {
	r, tokens := relay(b)
	for _, tr := range transports {
		key := router.KeyOf([]byte(tokens[tr.name]))
		for _, n := range sizes {
			b.Run(fmt.Sprintf("transport=%s/size=%d", tr.name, n), func(b *testing.B) {
				m := router.Message{Mode: "notify", Body: body(n)}
				measure(b, n, func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					rep, err := r.Router().Deliver(ctx, key, m)
					if err == nil && rep.Status != 200 {
						err = fmt.Errorf("status %d", rep.Status)
					}
					return err
				})
			})
		}
	}
}

// measure runs op b.N times, one at a time, and reports its latency
// percentiles beside ns/op.
func measure(b *testing.B, bytes int, op func() error) {
	lat := make(latencies, 0, b.N)
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	lat.report(b)
}

// post is one webhook over a fasthttp client.
func post(client *fasthttp.HostClient, url string, body []byte) func() error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetBody(body)
	return func() error {
		if err := client.Do(req, resp); err != nil {
			return err
		}
		if resp.StatusCode() != 200 {
			return fmt.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
		}
		return nil
	}
}

// BenchmarkWebhookHTTPS measures the whole path a caller sees: HTTPS POST
// -> fasthttp frontend -> router -> device stream -> device -> reply ->
// response, sequentially over one keep-alive connection.
func BenchmarkWebhookHTTPS(b *testing.B) {
	r, tokens := relay(b)
	client := &fasthttp.HostClient{Addr: r.Addr, IsTLS: true, TLSConfig: r.TLS}
	defer client.CloseIdleConnections()
	for _, tr := range transports {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("transport=%s/size=%d", tr.name, n), func(b *testing.B) {
				measure(b, n, post(client, r.URL("notify", tokens[tr.name]), body(n)))
			})
		}
	}
}

// BenchmarkWebhookHTTPSParallel is the same path with concurrent callers:
// throughput rather than latency.
func BenchmarkWebhookHTTPSParallel(b *testing.B) {
	r, tokens := relay(b)
	client := &fasthttp.HostClient{Addr: r.Addr, IsTLS: true, TLSConfig: r.TLS, MaxConns: 64}
	defer client.CloseIdleConnections()
	for _, tr := range transports {
		b.Run("transport="+tr.name, func(b *testing.B) {
			url, payload := r.URL("notify", tokens[tr.name]), body(256)
			b.SetParallelism(8)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				do := post(client, url, payload)
				for pb.Next() {
					if err := do(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkWebhookHTTPSNewConn is one webhook per new TLS connection (a
// caller without keep-alive), with and without --mqtt-on-listen: what the
// HTTPS port's first-byte look for an MQTT CONNECT costs the HTTPS path.
func BenchmarkWebhookHTTPSNewConn(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("mqtt-on-listen=%v", shared), func(b *testing.B) {
			r := relaytest.Start(b, func(c *server.Config) {
				relaytest.NoLimits(c)
				c.MQTTOnListen = shared
			})
			tok := wire.NewToken()
			r.Dial(b, tok, device.HandlerFunc(acker))
			// No session resumption: every connection is a full handshake.
			tc := r.TLS.Clone()
			tc.ClientSessionCache = nil
			client := &fasthttp.HostClient{Addr: r.Addr, IsTLS: true, TLSConfig: tc}
			do := post(client, r.URL("notify", tok), body(256))
			measure(b, 256, func() error {
				defer client.CloseIdleConnections()
				return do()
			})
		})
	}
}

// BenchmarkSessionSetup measures a device's dial, handshake and login until
// WELCOME, then its hang-up: what a reconnecting fleet costs.
func BenchmarkSessionSetup(b *testing.B) {
	// Hundreds of handshakes a second from one source: no source limit.
	r := relaytest.Start(b, relaytest.NoLimits)
	for _, tr := range transports {
		for _, resume := range []bool{false, true} {
			b.Run(fmt.Sprintf("transport=%s/resume=%v", tr.name, resume), func(b *testing.B) {
				opt := tr.opt
				opt.TLS = r.TLS
				// A full handshake every time, or a resumed one after
				// the first (the device keeps the relay's ticket).
				opt.Sessions = noSessions{}
				if resume {
					opt.Sessions = tls.NewLRUClientSessionCache(1)
				}
				// A token per dial: a WebTransport session ends after
				// Close returns, and a login with its token meanwhile is
				// a takeover, which the clone-fight damping limits.
				measure(b, 0, func() error {
					c, err := device.Dial(context.Background(), r.Addr, wire.NewToken(), opt)
					if err != nil {
						return err
					}
					return c.Close()
				})
			})
		}
	}
}

// noSessions is a TLS session cache that keeps nothing: every handshake
// is a full one.
type noSessions struct{}

func (noSessions) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (noSessions) Put(string, *tls.ClientSessionState)        {}

// BenchmarkWebhookUnderSlowloris is BenchmarkWebhookHTTPS (64 B, QUIC
// device) with and without 1,000 half-sent requests held open against the
// same frontend: what a slowloris costs everyone else, in p50/p99.
func BenchmarkWebhookUnderSlowloris(b *testing.B) {
	r := relaytest.Start(b, func(c *server.Config) {
		relaytest.NoLimits(c)
		c.HTTPReadTimeout = time.Minute // the attack outlives the benchmark
	})
	tok := wire.NewToken()
	r.Dial(b, tok, device.HandlerFunc(acker))
	client := &fasthttp.HostClient{Addr: r.Addr, IsTLS: true, TLSConfig: r.TLS}
	defer client.CloseIdleConnections()
	do := post(client, r.URL("notify", tok), body(64))
	b.Run("slow=0", func(b *testing.B) { measure(b, 64, do) })
	r.Slowloris(b, 1000) // open once, held through every round below
	b.Run("slow=1000", func(b *testing.B) { measure(b, 64, do) })
}
