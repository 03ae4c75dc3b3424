package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
)

// TestOriginCheckAlikeForWebSocketAndWebTransport: one origin check admits
// and refuses the same pages at /connect over WebSocket (TCP) and
// WebTransport (HTTP/3): no Origin (a device, not a browser), the relay's
// own origin and --allow-origin's; not another scheme, host, port or
// spelling of them, nor an opaque ("null") origin.
func TestOriginCheckAlikeForWebSocketAndWebTransport(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.AllowOrigins = []string{"https://clock.example"} })
	host, port, _ := strings.Cut(e.Addr, ":")
	for origin, admitted := range map[string]bool{
		"":                                   true,
		"https://" + e.Addr:                  true,
		"https://clock.example":              true,
		"https://evil.example":               false,
		"http://" + e.Addr:                   false,
		"https://" + host:                    false, // another port
		"https://localhost:" + port:          false, // another name for the same host
		"https://" + e.Addr + "/":            false, // an origin has no path
		"HTTPS://" + strings.ToUpper(host):   false, // browsers send it lower case
		"https://clock.example.evil.example": false,
		"null":                               false,
		"https://clock.example:443":          false,
	} {
		ws, wsBody := dialWebSocketWithOrigin(t, e, origin)
		wt, err := dialWithOrigin(t, e, origin)
		want := http.StatusForbidden
		if admitted {
			want = http.StatusOK // WebSocket's 101, as dialWithOrigin's 200
		}
		if ws != want || wt != want {
			t.Errorf("origin %q: WebSocket %d, WebTransport %d (%v); want %d on both", origin, ws, wt, err, want)
		}
		if ws == http.StatusForbidden && relaytest.ErrorCode(t, wsBody) != "origin_not_allowed" {
			t.Errorf("origin %q: WebSocket refusal %s", origin, wsBody)
		}
	}
}

// dialWebSocketWithOrigin opens a WebSocket to /connect as a page from
// origin would (none if empty) and returns 200 for an upgrade, else the
// refusal's status and body.
func dialWebSocketWithOrigin(t *testing.T, e *relaytest.Relay, origin string) (int, []byte) {
	t.Helper()
	var hdr http.Header
	if origin != "" {
		hdr = http.Header{"Origin": {origin}}
	}
	d := &websocket.Dialer{TLSClientConfig: e.TLS.Clone(), HandshakeTimeout: 5 * time.Second}
	c, rsp, err := d.Dial("wss://"+e.Addr+server.ConnectPath, hdr)
	if err == nil {
		c.Close()
		return http.StatusOK, nil
	}
	if rsp == nil {
		t.Fatalf("origin %q: %v", origin, err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	return rsp.StatusCode, b
}
