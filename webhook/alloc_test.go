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

// TestJSONBodyDoesNotAllocate: the common webhook, a JSON body with its
// Content-Type, passes toJSON as it is, without an allocation. (Under the
// race detector AllocsPerRun sees the detector's own allocations now and
// then: hence this file's build tag.)
func TestJSONBodyDoesNotAllocate(t *testing.T) {
	body, ct := []byte(`{"text":"hi","color":[255,0,0]}`), []byte("application/json; charset=utf-8")
	if n := testing.AllocsPerRun(100, func() {
		if b, err := toJSON("notify", ct, body, 1<<16); err != nil || &b[0] != &body[0] {
			t.Fatal("the body did not pass as it is")
		}
	}); n != 0 {
		t.Fatalf("toJSON allocates %v times for a JSON body", n)
	}
}
