package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pixelrelay/relay/httperr"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

// deliverFunc lets a unit test decide what "the device" answers, for every
// key; the whole path over real sockets is tested in package server.
type deliverFunc func(context.Context, router.Key, router.Message) (router.Reply, error)

func (f deliverFunc) Route(k router.Key) router.Dest { return &funcDest{f, k} }

// funcDest is deliverFunc's way to k.
type funcDest struct {
	f deliverFunc
	k router.Key
}

func (d *funcDest) Deliver(ctx context.Context, m router.Message) (router.Reply, error) {
	return d.f(ctx, d.k, m)
}

// newTest returns a Handler on the default configuration as mutate
// changes it.
func newTest(tb testing.TB, r Router, mutate func(*Config)) *Handler {
	tb.Helper()
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := New(r, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func serve(h *Handler, method, uri, auth, body string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	if auth != "" {
		ctx.Request.Header.Set("Authorization", auth)
	}
	ctx.Request.SetBodyString(body)
	h.ServeFastHTTP(&ctx)
	return &ctx
}

func code(t *testing.T, ctx *fasthttp.RequestCtx) string {
	t.Helper()
	var e struct{ Error, Code string }
	if err := json.Unmarshal(ctx.Response.Body(), &e); err != nil || e.Error == "" || e.Code == "" {
		t.Fatalf("body %q is not the error shape", ctx.Response.Body())
	}
	return e.Code
}

func TestDeliveryOutcomesMapToStatuses(t *testing.T) {
	tok := wire.NewToken()
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{router.ErrNoDevice, 404, "no_device"},
		{router.ErrBusy, 503, "busy"},
		{router.ErrTimeout, 504, "timeout"},
		{router.ErrGone, 502, "device_gone"},
		{fmt.Errorf("%w: detail", router.ErrBadReply), 502, "bad_reply"},
		{fmt.Errorf("surprise"), 500, "internal"},
	} {
		h := newTest(t, deliverFunc(func(context.Context, router.Key, router.Message) (router.Reply, error) {
			return router.Reply{}, c.err
		}), nil)
		ctx := serve(h, "POST", "/cloud?mode=notify&token="+tok, "", `{}`)
		if ctx.Response.StatusCode() != c.status || code(t, ctx) != c.code {
			t.Errorf("%v: %d %s; want %d %s", c.err, ctx.Response.StatusCode(), ctx.Response.Body(), c.status, c.code)
		}
		if c.status == 503 && string(ctx.Response.Header.Peek("Retry-After")) != "1" {
			t.Errorf("busy without Retry-After")
		}
	}
}

func TestHandlerPassesModeKeyAndBody(t *testing.T) {
	tok := wire.NewToken()
	var got router.Message
	var gotKey router.Key
	h := newTest(t, deliverFunc(func(ctx context.Context, k router.Key, m router.Message) (router.Reply, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("delivery context has no deadline")
		}
		got, gotKey = router.Message{Mode: m.Mode, Body: append([]byte(nil), m.Body...)}, k
		return router.Reply{Status: 201, Body: []byte(`{"ok":1}`)}, nil
	}), nil)
	ctx := serve(h, "POST", "/cloud?mode=draw", "Bearer "+tok, `{"draw":[]}`)
	if ctx.Response.StatusCode() != 201 || string(ctx.Response.Body()) != `{"ok":1}` {
		t.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if got.Mode != "draw" || string(got.Body) != `{"draw":[]}` || gotKey != router.KeyOf([]byte(tok)) {
		t.Fatalf("delivered %+v with the wrong key or body", got)
	}
	if ct := string(ctx.Response.Header.ContentType()); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
}

func TestDrainingRefusesWithRetryAfter(t *testing.T) {
	h := newTest(t, deliverFunc(func(context.Context, router.Key, router.Message) (router.Reply, error) {
		t.Fatal("delivered while draining")
		return router.Reply{}, nil
	}), nil)
	h.Drain()
	ctx := serve(h, "POST", "/cloud?mode=notify&token="+wire.NewToken(), "", `{}`)
	if ctx.Response.StatusCode() != 503 || code(t, ctx) != "draining" || len(ctx.Response.Header.Peek("Retry-After")) == 0 {
		t.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

func TestIsMedia(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/plain": true, "Text/Plain": true, "text/plain; charset=utf-8": true, " text/plain ;q=1": true,
		"": false, "text/plainx": false, "text/html": false, "application/json": false, "text/": false,
	} {
		if got := isMedia([]byte(ct), "text/plain"); got != want {
			t.Errorf("isMedia(%q) = %v", ct, got)
		}
	}
}

func TestToJSONLimits(t *testing.T) {
	// Escaping can make the converted body longer than what was posted.
	quotes := []byte(`""""""""""`)
	if _, err := toJSON("notify", []byte("text/plain"), quotes, 20); err != httperr.TooLarge {
		t.Fatalf("a text that grows past max-body: %v, want httperr.TooLarge", err)
	}
	if b, err := toJSON("notify", []byte("text/plain"), quotes, 40); err != nil || string(b) != `{"text":"\"\"\"\"\"\"\"\"\"\""}` {
		t.Fatalf("text of quotes: %s %v", b, err)
	}
	if b, err := toJSON("notify", []byte("text/plain"), []byte("\xff\xfe"), 40); err != nil || !json.Valid(b) {
		t.Fatalf("text that is not UTF-8: %q %v; want valid JSON", b, err)
	}
	if _, err := toJSON("stats", nil, nil, 40); err != nil {
		t.Fatalf("an empty body: %v", err)
	}
}

func TestNameQuery(t *testing.T) {
	for name, want := range map[string]string{"weather": "name=weather", "a.b-c_D9": "name=a.b-c_D9"} {
		if q, err := nameQuery([]byte(name)); err != nil || q != want {
			t.Errorf("nameQuery(%q) = %q, %v", name, q, err)
		}
	}
	for _, name := range []string{"", "a b", "a/b", "a&b=c", "ä", string(make([]byte, 65))} {
		if _, err := nameQuery([]byte(name)); err == nil {
			t.Errorf("nameQuery(%q) passed", name)
		}
	}
}

// TestDuplicatesRefused: mode, token, name or Authorization given twice
// is 400 duplicate_param on both frontends, before anything is delivered:
// a proxy that reads the last value would disagree with the relay, which
// would read the first.
func TestDuplicatesRefused(t *testing.T) {
	tok, other := wire.NewToken(), wire.NewToken()
	h := newTest(t, deliverFunc(func(context.Context, router.Key, router.Message) (router.Reply, error) {
		t.Error("a request with a duplicate was delivered")
		return router.Reply{Status: 200, Body: []byte(`{}`)}, nil
	}), nil)
	for _, tc := range []struct {
		name, query string
		auth        []string
	}{
		{"token", "mode=notify&token=" + tok + "&token=" + other, nil},
		{"token, the same twice", "mode=notify&token=" + tok + "&token=" + tok, nil},
		{"mode", "mode=notify&mode=reboot&token=" + tok, nil},
		{"name", "mode=custom&name=a&name=b&token=" + tok, nil},
		{"Authorization", "mode=notify", []string{"Bearer " + tok, "Bearer " + other}},
	} {
		t.Run(tc.name+"/fasthttp", func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod("POST")
			ctx.Request.SetRequestURI("/cloud?" + tc.query)
			for _, a := range tc.auth {
				ctx.Request.Header.Add("Authorization", a)
			}
			ctx.Request.SetBodyString(`{}`)
			h.ServeFastHTTP(&ctx)
			if ctx.Response.StatusCode() != 400 || code(t, &ctx) != "duplicate_param" {
				t.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		})
		t.Run(tc.name+"/net/http", func(t *testing.T) {
			r := httptest.NewRequest("POST", "/cloud?"+tc.query, strings.NewReader(`{}`))
			for _, a := range tc.auth {
				r.Header.Add("Authorization", a)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 400 || !strings.Contains(w.Body.String(), `"code":"duplicate_param"`) {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
		})
	}
}
