package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/pixelrelay/relay/httperr"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

// FuzzParse feeds arbitrary mode, token and Authorization values to the
// request parser: it never panics, and whatever it accepts is a known mode
// and a token that passes wire.CheckToken.
func FuzzParse(f *testing.F) {
	tok := wire.NewToken()
	f.Add([]byte("notify"), []byte(tok), []byte(""))
	f.Add([]byte("draw"), []byte(""), []byte("Bearer "+tok))
	f.Add([]byte("app"), []byte(tok), []byte("Bearer "+tok+"x"))
	f.Add([]byte(""), []byte("\x00"), []byte("Bearer"))
	f.Fuzz(func(t *testing.T, mode, token, auth []byte) {
		m, got, err := parse(request{mode: mode, token: token, auth: auth})
		if err != nil {
			if e := httperr.For(err); e == httperr.Internal {
				t.Fatalf("parse returned %T, not one of the table's errors", err)
			}
			return
		}
		if !slices.Contains(wire.Modes, m) || wire.CheckToken(got) != nil {
			t.Fatalf("accepted mode %q token %q", m, got)
		}
	})
}

// FuzzServeFastHTTP reads arbitrary bytes as an HTTP request, as fasthttp
// would off the wire, and serves it: no panic, and every answer is either
// the device's reply or one of the table's JSON errors.
func FuzzServeFastHTTP(f *testing.F) {
	tok := wire.NewToken()
	f.Add([]byte("POST /cloud?mode=notify&token=" + tok + " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"))
	f.Add([]byte("POST /cloud?mode=draw HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Length: 5\r\n\r\n{\"a\":"))
	f.Add([]byte("GET /cloud?mode=notify&token=%00%ff HTTP/1.1\r\nHost: x\r\n\r\n"))
	h := newTest(f, deliverFunc(func(context.Context, router.Key, router.Message) (router.Reply, error) {
		return router.Reply{Status: 200, Body: []byte(`{"ok":true}`)}, nil
	}), nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ctx fasthttp.RequestCtx
		if err := ctx.Request.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
			return // fasthttp's own refusal; ServeError answers those
		}
		h.ServeFastHTTP(&ctx)
		body := ctx.Response.Body()
		if ctx.Response.StatusCode() == 200 {
			if !bytes.Equal(body, []byte(`{"ok":true}`)) {
				t.Fatalf("200 with %q", body)
			}
			return
		}
		var e struct{ Error, Code string }
		if err := json.Unmarshal(body, &e); err != nil || e.Code == "" {
			t.Fatalf("status %d with body %q", ctx.Response.StatusCode(), body)
		}
	})
}
