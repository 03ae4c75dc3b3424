package bench

import (
	"fmt"
	"testing"

	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/valyala/fasthttp"
)

// BenchmarkPageHTTPS measures a GET of the device page's files and its
// config over HTTPS, sequentially over one keep-alive connection: the
// net/http page handler behind fasthttpadaptor. The page is no hot path
// (a visitor loads it once); this shows what the adaptor costs it beside
// TLS and the loopback round trip.
func BenchmarkPageHTTPS(b *testing.B) {
	r := relaytest.Start(b, relaytest.NoLimits)
	client := &fasthttp.HostClient{Addr: r.Addr, IsTLS: true, TLSConfig: r.TLS}
	defer client.CloseIdleConnections()
	for _, path := range []string{"/", "/app.js", server.DeviceConfigPath, "/nope"} {
		b.Run("path="+path, func(b *testing.B) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("https://" + r.Addr + path)
			size := 0
			measure(b, 0, func() error {
				if err := client.Do(req, resp); err != nil {
					return err
				}
				if s := resp.StatusCode(); s != 200 && (path != "/nope" || s != 404) {
					return fmt.Errorf("GET %s: status %d", path, s)
				}
				size = len(resp.Body())
				return nil
			})
			b.SetBytes(int64(size))
		})
	}
}
