package webhook

import (
	"context"
	"github.com/pixelrelay/relay/limit"
	"net"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

// serveFrom is serve with the request coming from addr.
func serveFrom(h *Handler, addr, uri string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI(uri)
	req.SetBodyString(`{}`)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr)), nil)
	h.ServeFastHTTP(&ctx)
	return &ctx
}

func ok200(context.Context, router.Key, router.Message) (router.Reply, error) {
	return router.Reply{Status: 200, Body: []byte(`{"ok":true}`)}, nil
}

// wantLimited checks a 429 rate_limited with a Retry-After of at least 1.
func wantLimited(t *testing.T, ctx *fasthttp.RequestCtx) int {
	t.Helper()
	if s := ctx.Response.StatusCode(); s != 429 || code(t, ctx) != "rate_limited" {
		t.Fatalf("%d %s; want 429 rate_limited", s, ctx.Response.Body())
	}
	n, err := strconv.Atoi(string(ctx.Response.Header.Peek("Retry-After")))
	if err != nil || n < 1 {
		t.Fatalf("Retry-After %q; want whole seconds >= 1", ctx.Response.Header.Peek("Retry-After"))
	}
	return n
}

func TestSourceKey(t *testing.T) {
	for _, c := range []struct{ addr, key string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"},
		{"2001:db8:1:2::1", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
		{"::1", "::"},
	} {
		if got := limit.Source(netip.MustParseAddr(c.addr)); got != netip.MustParseAddr(c.key) {
			t.Errorf("limit.Source(%s) = %s, want %s", c.addr, got, c.key)
		}
	}
	if got := limit.Source(netip.Addr{}); got != (netip.Addr{}) {
		t.Errorf("source of an unreadable address = %s, want the zero Addr", got)
	}
}

func TestTokenLimitIsPerToken(t *testing.T) {
	h := newTest(t, deliverFunc(ok200), func(c *Config) { c.PerToken.PerSecond = 0.001; c.PerToken.Burst = 2 })
	a, b := wire.NewToken(), wire.NewToken()
	for range 2 {
		if ctx := serveFrom(h, "192.0.2.1:1000", "/cloud?mode=notify&token="+a); ctx.Response.StatusCode() != 200 {
			t.Fatalf("within the burst: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	// 1 token per 1000 s: the next one is about 1000 s away.
	if n := wantLimited(t, serveFrom(h, "192.0.2.1:1000", "/cloud?mode=notify&token="+a)); n < 999 || n > 1000 {
		t.Fatalf("Retry-After %d; want about 1000", n)
	}
	if ctx := serveFrom(h, "192.0.2.1:1000", "/cloud?mode=notify&token="+b); ctx.Response.StatusCode() != 200 {
		t.Fatalf("another token from the same source: %d", ctx.Response.StatusCode())
	}
}

func TestSourceLimitIsPerAddress(t *testing.T) {
	h := newTest(t, deliverFunc(ok200), func(c *Config) { c.PerSource.PerSecond = 0.001; c.PerSource.Burst = 2 })
	tok := wire.NewToken()
	url := "/cloud?mode=notify&token=" + tok
	serveFrom(h, "[2001:db8::1]:1", url)
	serveFrom(h, "[2001:db8::2]:2", url)
	// The same /64, another host: the same source.
	wantLimited(t, serveFrom(h, "[2001:db8::3]:3", url))
	// Even malformed requests count, and are refused before they are read.
	wantLimited(t, serveFrom(h, "[2001:db8::1]:1", "/cloud"))
	for _, other := range []string{"[2001:db8:0:1::1]:1", "192.0.2.1:1"} {
		if ctx := serveFrom(h, other, url); ctx.Response.StatusCode() != 200 {
			t.Errorf("from %s: %d; another source is not limited", other, ctx.Response.StatusCode())
		}
	}
}

// fakeDevice answers every message with 200, and counts them.
type fakeDevice struct{ delivers int }

func (d *fakeDevice) Deliver(context.Context, router.Message) (router.Reply, error) {
	d.delivers++
	return router.Reply{Status: 200, Body: []byte(`{"ok":true}`)}, nil
}
func (*fakeDevice) Close(router.CloseReason)                 {}
func (*fakeDevice) Release(router.Key) (router.Claim, error) { return router.Taken, nil }

// farMesh is the mesh of a cluster in which no other node holds any token:
// every key not bound here reaches it, and it answers no_device.
type farMesh struct{ delivers int }

func (m *farMesh) Deliver(context.Context, router.Key, router.Message) (router.Reply, error) {
	m.delivers++
	return router.Reply{}, router.ErrNoDevice
}
func (*farMesh) Claim(context.Context, router.Key) (router.Claim, error) { return router.Free, nil }
func (*farMesh) Held(context.Context, router.Key) bool                   { return false }
func (*farMesh) Bound(context.Context, router.Key)                       {}
func (*farMesh) Unbound(context.Context, router.Key)                     {}

func TestMissLimit(t *testing.T) {
	for _, c := range []struct {
		name string
		mesh *farMesh
	}{
		{"alone", nil},       // misses are answered before delivery
		{"mesh", &farMesh{}}, // misses come back from the mesh's Deliver
	} {
		t.Run(c.name, func(t *testing.T) {
			known, dev := wire.NewToken(), &fakeDevice{}
			rt := router.New()
			if c.mesh != nil {
				rt.SetMesh(c.mesh)
			}
			rt.Bind(context.Background(), router.KeyOf([]byte(known)), dev)
			h := newTest(t, rt, func(cfg *Config) { cfg.Misses = limit.Rate{PerSecond: 0.001, Burst: 3} })
			var first []byte
			for i := range 3 {
				ctx := serveFrom(h, "192.0.2.1:1", "/cloud?mode=notify&token="+wire.NewToken())
				if ctx.Response.StatusCode() != 404 || code(t, ctx) != "no_device" {
					t.Fatalf("miss %d: %d %s; want 404 no_device", i, ctx.Response.StatusCode(), ctx.Response.Body())
				}
				if first == nil {
					first = append([]byte(nil), ctx.Response.Body()...)
				} else if string(ctx.Response.Body()) != string(first) {
					t.Fatalf("404 bodies differ: %s and %s", first, ctx.Response.Body())
				}
			}
			wantLimited(t, serveFrom(h, "192.0.2.1:1", "/cloud?mode=notify&token="+wire.NewToken()))
			// The same source still reaches a connected device.
			if ctx := serveFrom(h, "192.0.2.1:1", "/cloud?mode=notify&token="+known); ctx.Response.StatusCode() != 200 {
				t.Fatalf("known token after the misses: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
			// Another source has its own misses.
			if ctx := serveFrom(h, "192.0.2.2:1", "/cloud?mode=notify&token="+wire.NewToken()); ctx.Response.StatusCode() != 404 {
				t.Fatalf("another source's first miss: %d", ctx.Response.StatusCode())
			}
			if dev.delivers != 1 {
				t.Fatalf("the device got %d deliveries, want 1", dev.delivers)
			}
			if c.mesh != nil && c.mesh.delivers != 3+1+1 {
				t.Fatalf("the mesh got %d deliveries, want every miss's: %d", c.mesh.delivers, 3+1+1)
			}
		})
	}
}

func TestLimitsOff(t *testing.T) {
	h := newTest(t, deliverFunc(ok200), func(c *Config) { c.PerToken = limit.Rate{}; c.PerSource = limit.Rate{}; c.Misses = limit.Rate{} })
	tok := wire.NewToken()
	for i := range 1000 {
		if ctx := serveFrom(h, "192.0.2.1:1", "/cloud?mode=notify&token="+tok); ctx.Response.StatusCode() != 200 {
			t.Fatalf("webhook %d with limits off: %d", i, ctx.Response.StatusCode())
		}
	}
	if h.tokens.Len()+h.sources.Len()+h.misses.Len() != 0 {
		t.Fatal("limits that are off hold entries")
	}
}

func TestHTTP3FrontendKeysByRemoteAddr(t *testing.T) {
	h := newTest(t, deliverFunc(ok200), func(c *Config) { c.PerSource.PerSecond = 0.001; c.PerSource.Burst = 1 })
	post := func(remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/cloud?mode=notify&token="+wire.NewToken(), strings.NewReader(`{}`))
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := post("192.0.2.1:443"); w.Code != 200 {
		t.Fatalf("first: %d", w.Code)
	}
	w := post("192.0.2.1:444")
	if w.Code != 429 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"code":"rate_limited"`) {
		t.Fatalf("second from the same address: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if w := post("[2001:db8::1]:443"); w.Code != 200 {
		t.Fatalf("another address: %d", w.Code)
	}
}
