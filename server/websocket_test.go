package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
)

var overWebSocket = device.Options{WebSocket: true}

// TestRotationAndTakeoverAcrossWebSocket: a WebSocket session rotates its
// token like any other; a QUIC login takes it over, and a WebSocket login
// takes the QUIC one back.
func TestRotationAndTakeoverAcrossWebSocket(t *testing.T) {
	e := relaytest.Start(t, nil)
	old, next := wire.NewToken(), wire.NewToken()
	c, served := e.DialWith(t, old, echo("ws"), overWebSocket)
	if err := c.Rotate(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if s, _ := e.Post(t, "notify", old, `{}`); s != 404 {
		t.Fatalf("old token after rotation: %d", s)
	}
	if s, body := e.Post(t, "notify", next, `{}`); s != 200 || !strings.Contains(string(body), `"ws"`) {
		t.Fatalf("new token after rotation: %d %s", s, body)
	}
	_, quicServed := e.Dial(t, next, echo("quic"))
	if err := <-served; !errors.Is(err, device.ErrReplaced) {
		t.Fatalf("WebSocket session ended with %v, want ErrReplaced", err)
	}
	if s, body := e.Post(t, "notify", next, `{}`); s != 200 || !strings.Contains(string(body), `"quic"`) {
		t.Fatalf("after the QUIC takeover: %d %s", s, body)
	}
	e.DialWith(t, next, echo("ws2"), overWebSocket)
	if err := <-quicServed; !errors.Is(err, device.ErrReplaced) {
		t.Fatalf("QUIC session ended with %v, want ErrReplaced", err)
	}
	if s, body := e.Post(t, "notify", next, `{}`); s != 200 || !strings.Contains(string(body), `"ws2"`) {
		t.Fatalf("after the WebSocket takeover: %d %s", s, body)
	}
	if got := metric(t, e, `relay_logins_total{transport="websocket"}`); got != 2 {
		t.Fatalf("WebSocket logins counted: %v, want 2", got)
	}
}

func TestShutdownSendsWebSocketDevicesAway(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.ReconnectSpread = time.Second })
	_, served := e.DialWith(t, wire.NewToken(), echo("ws"), overWebSocket)
	e.Stop()
	var ga *device.GoAwayError
	if err := <-served; !errors.As(err, &ga) || ga.Reason != wire.ReasonDraining {
		t.Fatalf("device saw %v; want a draining go-away", err)
	}
}

// TestWebSocketConnectRefusals: /connect without an upgrade is a 400, and
// a page from a foreign origin is refused before the upgrade.
func TestWebSocketConnectRefusals(t *testing.T) {
	e := relaytest.Start(t, nil)
	if s, body := e.Do(t, http.MethodGet, "https://"+e.Addr+server.ConnectPath, "", nil); s != 400 {
		t.Fatalf("GET /connect without an upgrade: %d %s", s, body)
	}
	d := &websocket.Dialer{TLSClientConfig: e.TLS.Clone()}
	_, rsp, err := d.Dial("wss://"+e.Addr+server.ConnectPath, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || rsp == nil || rsp.StatusCode != http.StatusForbidden {
		t.Fatalf("a foreign page: %v %v, want 403", rsp, err)
	}
	// A device (no Origin) logs in.
	tok := wire.NewToken()
	e.DialWith(t, tok, echo("ws"), overWebSocket)
	if s, _ := e.Post(t, "notify", tok, `{}`); s != 200 {
		t.Fatalf("webhook to a WebSocket device: %d", s)
	}
}

// TestTakeoverAnswersMessagesInFlight: a login that takes a token over
// (here a device moving from WebSocket back to QUIC) gets every new
// message at once, while the replaced session still answers the message it
// was sent: no webhook is lost to the move.
func TestTakeoverAnswersMessagesInFlight(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok := wire.NewToken()
	b := newBlocker()
	_, served := e.DialWith(t, tok, b, overWebSocket)
	held := make(chan int, 1)
	go func() {
		resp, err := e.HTTP.Post(e.URL("notify", tok), "application/json", strings.NewReader(`{"n":1}`))
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	<-b.arrived
	e.Dial(t, tok, echo("quic"))
	if s, body := e.Post(t, "notify", tok, `{}`); s != 200 || !strings.Contains(string(body), `"quic"`) {
		t.Fatalf("after the takeover: %d %s, want the new session's answer", s, body)
	}
	select {
	case err := <-served:
		t.Fatalf("the replaced session ended with a message in flight: %v", err)
	default:
	}
	close(b.release)
	if s := <-held; s != 200 {
		t.Fatalf("the message in flight at the takeover: %d, want 200", s)
	}
	if err := <-served; !errors.Is(err, device.ErrReplaced) {
		t.Fatalf("the replaced session ended with %v, want ErrReplaced", err)
	}
}
