package webhook

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

// BenchmarkNoDevice measures the answer to a webhook for a token no device
// holds: what a token guesser costs the relay, from a parsed request to
// the written 404. route=alone is a node alone (Route answers the miss,
// a nil Dest, before a delivery context exists); route=mesh is a node of a
// cluster, whose router routes every key not bound here to its mesh, so
// every miss goes through context.WithTimeout and Deliver (here a mesh
// that answers no_device at once). limits=on runs the buckets (with room
// to spare, so every answer stays a 404): source and miss, and with mesh
// also the token's, taken before Deliver; limits=off turns all three off;
// limits=spent is a source over its miss budget.
func BenchmarkNoDevice(b *testing.B) {
	meshed := router.New()
	meshed.SetMesh(&farMesh{})
	for _, d := range []struct {
		name string
		r    Router
	}{{"alone", router.New()}, {"mesh", meshed}} {
		for _, l := range []struct {
			name string
			cfg  func(*Config)
		}{
			{"on", func(c *Config) {
				c.PerSource.PerSecond = 1e12
				c.PerSource.Burst = 1 << 30
				c.PerToken.PerSecond = 1e12
				c.PerToken.Burst = 1 << 30
				c.Misses.PerSecond = 1e12
				c.Misses.Burst = 1 << 30
			}},
			{"off", func(c *Config) { c.PerSource = limit.Rate{}; c.PerToken = limit.Rate{}; c.Misses = limit.Rate{} }},
			// A guesser that has used up its misses (default miss limit):
			// all but 5 answers a second are 429s.
			{"spent", func(c *Config) {
				c.PerSource.PerSecond = 1e12
				c.PerSource.Burst = 1 << 30
				c.PerToken.PerSecond = 1e12
				c.PerToken.Burst = 1 << 30
			}},
		} {
			b.Run("route="+d.name+"/limits="+l.name, func(b *testing.B) {
				h := newTest(b, d.r, l.cfg)
				var req fasthttp.Request
				req.Header.SetMethod("POST")
				req.SetRequestURI("/cloud?mode=notify&token=" + wire.NewToken())
				req.SetBodyString(`{"text":"guess"}`)
				var ctx fasthttp.RequestCtx
				ctx.Init(&req, net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:4000")), nil)
				b.ReportAllocs()
				for b.Loop() {
					h.ServeFastHTTP(&ctx)
				}
				want := 404
				if l.name == "spent" && b.N > DefaultConfig().Misses.Burst {
					want = 429
				}
				if s := ctx.Response.StatusCode(); s != want && !(want == 429 && s == 404) {
					b.Fatalf("status %d, want %d", s, want)
				}
			})
		}
	}
}

// BenchmarkDelivered measures a webhook for a device on this node, from a
// parsed request to the written reply, with a device that answers at once:
// the frontend's and the router's part of the hot path (Route, the token
// limit, the delivery context, the device's Deliver), without a network.
func BenchmarkDelivered(b *testing.B) {
	tok := wire.NewToken()
	rt := router.New()
	rt.Bind(context.Background(), router.KeyOf([]byte(tok)), &fakeDevice{})
	h := newTest(b, rt, func(c *Config) { c.PerSource, c.PerToken, c.Misses = limit.Rate{}, limit.Rate{}, limit.Rate{} })
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/cloud?mode=notify&token=" + tok)
	req.SetBodyString(`{"text":"hi"}`)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:4000")), nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeFastHTTP(&ctx)
	}
	if s := ctx.Response.StatusCode(); s != 200 {
		b.Fatalf("status %d, want 200", s)
	}
}
