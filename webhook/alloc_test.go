//go:build !race

package webhook

import (
	"net"
	"net/netip"
	"testing"

	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

// TestMissDoesNotAllocate: a 404 for an unknown token, limits on, costs no
// allocation (BenchmarkNoDevice measures its time).
func TestMissDoesNotAllocate(t *testing.T) {
	h := newTest(t, router.New(), func(c *Config) {
		c.PerSource.PerSecond = 1e12
		c.PerSource.Burst = 1 << 30
		c.Misses.PerSecond = 1e12
		c.Misses.Burst = 1 << 30
	})
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/cloud?mode=notify&token=" + wire.NewToken())
	req.SetBodyString(`{"text":"guess"}`)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:4000")), nil)
	h.ServeFastHTTP(&ctx)
	if allocs := testing.AllocsPerRun(1000, func() { h.ServeFastHTTP(&ctx) }); allocs != 0 {
		t.Fatalf("404 no_device: %v allocs, want 0", allocs)
	}
	if s := ctx.Response.StatusCode(); s != 404 {
		t.Fatalf("status %d, want 404", s)
	}
}
