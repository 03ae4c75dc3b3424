package server_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go/quicvarint"
)

var overWebSocket = device.Options{Transport: transport.KindWebSocket}

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

// rawWebSocket opens a bare WebSocket to the relay's /connect, with no
// Origin (not a browser), and logs in on stream 0 with a new token; the test
// writes and reads mux frames by hand. readBuffer, if set, shrinks the
// socket's receive buffer, so that a client that never reads stalls the
// relay's writes after a few kilobytes.
func rawWebSocket(t *testing.T, e *relaytest.Relay, readBuffer int) *websocket.Conn {
	t.Helper()
	nd := &net.Dialer{}
	if readBuffer > 0 {
		// Before the connect, so that the window the relay sees is small
		// from the first segment.
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, readBuffer)
			})
			return errors.Join(err, serr)
		}
	}
	d := &websocket.Dialer{TLSClientConfig: e.TLS.Clone(), NetDialContext: nd.DialContext}
	c, _, err := d.Dial("wss://"+e.Addr+server.ConnectPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	login := wire.Login{Version: wire.Version, Token: []byte(wire.NewToken())}.Append([]byte{0x00, 0x00})
	if err := c.WriteMessage(websocket.BinaryMessage, login); err != nil {
		t.Fatal(err)
	}
	relaytest.WaitFor(t, func() bool { return e.Router().Len() == 1 })
	return c
}

// TestWebSocketStalledDeviceCannotHoldTheDrain: a device with no Origin
// that logs in, opens every stream it may (32 with the control stream),
// floods frames that each open one more (100,000: more refusals than the
// socket buffers hold), and never reads. The relay's refusals pile up on a
// writer the device stalls: they are dropped and counted, and the drain
// still ends within --drain-timeout.
func TestWebSocketStalledDeviceCannotHoldTheDrain(t *testing.T) {
	const drain = 2 * time.Second
	e := relaytest.Start(t, func(c *server.Config) {
		c.DrainTimeout = drain
		c.WebSocketWriteTimeout = time.Hour // only the drain may end the session
	})
	raw := rawWebSocket(t, e, 4096)
	for id := 4; id < 4*(32+100_000); id += 4 {
		frame := quicvarint.Append([]byte{0x00}, uint64(id))
		if err := raw.WriteMessage(websocket.BinaryMessage, frame); err != nil {
			t.Fatalf("stream %d: %v", id, err)
		}
	}
	relaytest.WaitFor(t, func() bool {
		return metric(t, e, `relay_websocket_drops_total{reason="control_queue_full"}`) > 0
	})

	start := time.Now()
	stopped := make(chan struct{})
	go func() { e.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * drain): // a bound on a failing test only
		t.Fatalf("the relay's drain outlived --drain-timeout (%v) by %v with a stalled WebSocket device", drain, 4*drain)
	}
	// Slack for the scheduler: the drain itself ends at its timeout.
	if got := time.Since(start); got > drain+time.Second {
		t.Fatalf("drain took %v, want at most --drain-timeout, %v", got, drain)
	}
}

// TestWebSocketStreamBuffer: at the relay, a WebSocket stream holds exactly
// PROTOCOL §2.5's 64 KiB + 1 KiB (66,560 bytes, with the default
// --max-body) unread, sent in one frame; one byte more closes the
// connection with 4001.
func TestWebSocketStreamBuffer(t *testing.T) {
	const buffer = 66_560
	e := relaytest.Start(t, nil)
	raw := rawWebSocket(t, e, 0)
	pong := make(chan struct{}, 1)
	raw.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
	read := make(chan error, 1)
	go func() {
		for {
			if _, _, err := raw.ReadMessage(); err != nil {
				read <- err
				return
			}
		}
	}()
	// Stream 4: a stream the relay never reads, so what it holds stays.
	if err := raw.WriteMessage(websocket.BinaryMessage, append([]byte{0x00, 0x04}, make([]byte, buffer)...)); err != nil {
		t.Fatal(err)
	}
	if err := raw.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pong: // the relay read the whole frame and still answers
	case err := <-read:
		t.Fatalf("a frame of exactly the stream buffer: %v", err)
	}
	if err := raw.WriteMessage(websocket.BinaryMessage, []byte{0x00, 0x04, 'x'}); err != nil {
		t.Fatal(err)
	}
	err := <-read
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != transport.WSCloseBase+wire.CloseProtocol || !strings.Contains(ce.Text, "66560") {
		t.Fatalf("one byte over the stream buffer: %v, want close 4001 naming the 66560-byte buffer", err)
	}
}
