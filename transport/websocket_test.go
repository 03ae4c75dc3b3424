package transport_test

// The WebSocket multiplexer's contract, as transport_test.go checks it for
// QUIC and WebTransport, over a real WebSocket on loopback (fasthttp's
// upgrader, the websocket package's dialer), plus what QUIC's stream
// credit and flow control did for free: the stream limit, the buffer bound,
// malformed frames, idle timeout and keep-alive.

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

var wsDefaults = transport.WSOptions{MaxIncomingStreams: peerStreams, MaxStreamBuffer: 64 << 10}

// wsPair returns a device (a, the WebSocket client) and a relay (b) end.
// raw, if set, gets the client's WebSocket instead, for tests that write
// frames by hand; a is then nil.
func wsPair(t *testing.T, relayOpt, deviceOpt transport.WSOptions, raw **websocket.Conn) (a, b transport.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relayOpt.Client = false
	ends := make(chan transport.Conn, 1)
	up := websocket.FastHTTPUpgrader{}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		err := up.Upgrade(ctx, func(c *websocket.Conn) {
			conn := transport.WebSocket(c, nil, relayOpt)
			ends <- conn
			<-conn.Done() // fasthttp reuses the connection when this returns
		})
		if err != nil {
			t.Errorf("upgrade: %v", err)
		}
	}}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Shutdown(); <-served })

	c, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if raw != nil {
		*raw = c
		t.Cleanup(func() { c.Close() })
	} else {
		deviceOpt.Client = true
		a = transport.WebSocket(c, nil, deviceOpt)
		t.Cleanup(func() { a.Close(0, "") })
	}
	b = <-ends
	t.Cleanup(func() { b.Close(0, "") })
	return a, b
}

func TestWebSocketRoundTrip(t *testing.T) {
	a, b := wsPair(t, wsDefaults, wsDefaults, nil)
	// The device's control stream, then a relay message stream.
	ctrl, rctrl := open(t, a, b, "LOGIN")
	if got, err := rctrl.Read(make([]byte, 5)); err != nil || got != 5 {
		t.Fatalf("control: %d, %v", got, err)
	}
	s, r := open(t, b, a, "MESSAGE")
	s.Close()
	if got, err := io.ReadAll(r); err != nil || string(got) != "MESSAGE" {
		t.Fatalf("read %q, %v", got, err)
	}
	big := make([]byte, 40<<10) // split into several frames
	for i := range big {
		big[i] = byte(i)
	}
	r.Write(big)
	r.Close()
	if got, err := io.ReadAll(s); err != nil || string(got) != string(big) {
		t.Fatalf("read %d bytes, %v; want the %d written", len(got), err, len(big))
	}
	ctrl.Write([]byte("ROTATE"))
	if got, err := rctrl.Read(make([]byte, 6)); err != nil || got != 6 {
		t.Fatalf("control after a message: %d, %v", got, err)
	}
}

func TestWebSocketAbortAndClose(t *testing.T) {
	a, b := wsPair(t, wsDefaults, wsDefaults, nil)
	s, r := open(t, b, a, "x")
	r.Read(make([]byte, 1))
	s.Abort(wire.StreamTooLarge)
	_, err := io.ReadAll(r)
	var se *transport.WSStreamError
	if !transport.ResetByPeer(err) || !errors.As(err, &se) || se.Code != wire.StreamTooLarge {
		t.Fatalf("read after the peer's Abort: %v, want a reset by the peer with 0x%x", err, wire.StreamTooLarge)
	}
	if _, err := r.Write([]byte("late")); !transport.ResetByPeer(err) {
		t.Fatalf("write after the peer's Abort: %v, want a reset by the peer", err)
	}

	b.Close(wire.CloseReplaced, "replaced")
	_, err = a.AcceptStream(context.Background())
	code, reason, ok := transport.PeerCloseCode(err)
	if !ok || code != wire.CloseReplaced || reason != "replaced" || transport.ClosedLocally(err) {
		t.Fatalf("peer sees %v: code 0x%x %q %v; want 0x%x replaced", err, code, reason, ok, wire.CloseReplaced)
	}
	if _, err := b.AcceptStream(context.Background()); !transport.ClosedLocally(err) {
		t.Fatalf("closing side: %v, want closed locally", err)
	}
	<-a.Context().Done()
}

func TestWebSocketDeadline(t *testing.T) {
	a, b := wsPair(t, wsDefaults, wsDefaults, nil)
	_, r := open(t, b, a, "x")
	r.Read(make([]byte, 1))
	r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	s, _ := open(t, a, b, "y")
	s.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := s.Write([]byte("z")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v", err)
	}
}

// TestWebSocketStreamLimit: streams over the receiver's limit are reset
// with 0x1, as QUIC's stream credit would have kept them from opening; one
// that ends frees its place.
func TestWebSocketStreamLimit(t *testing.T) {
	a, b := wsPair(t, wsDefaults, wsDefaults, nil)
	var first, firstR transport.Stream
	for i := range peerStreams {
		s, r := open(t, b, a, "x")
		if i == 0 {
			first, firstR = s, r
			r.Close()
			r.Read(make([]byte, 1))
		}
	}
	over, err := b.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	over.Write([]byte("x"))
	_, err = io.ReadAll(over)
	var se *transport.WSStreamError
	if !errors.As(err, &se) || !se.Remote || se.Code != wire.StreamCancelled {
		t.Fatalf("a stream over the limit: %v, want a reset 0x1", err)
	}
	// The first stream ends both ways, read to its end: its place is
	// free again.
	first.Close()
	io.ReadAll(first)
	io.ReadAll(firstR)
	var again transport.Stream
	for again == nil {
		s, err := b.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s.Write([]byte("x"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := a.AcceptStream(ctx); err == nil {
			again = s
		}
		cancel()
	}
}

// TestWebSocketBufferBound: a stream may hold exactly its buffer unread,
// whether it came in one frame or several; one byte more breaks the
// protocol, closing the connection with 0x1.
func TestWebSocketBufferBound(t *testing.T) {
	small := wsDefaults
	small.MaxStreamBuffer = 10
	a, b := wsPair(t, small, wsDefaults, nil)
	s, err := a.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("0123456789")) // one frame at the bound
	r, err := b.AcceptStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 10)
	if _, err := io.ReadFull(r, got); err != nil || string(got) != "0123456789" {
		t.Fatalf("a frame of exactly the buffer: read %q, %v", got, err)
	}
	s.Write([]byte("01234"))
	s.Write([]byte("56789")) // two frames filling it again
	s.Write([]byte("!"))     // one byte over
	<-a.Context().Done()
	code, _, ok := transport.PeerCloseCode(context.Cause(a.Context()))
	if !ok || code != wire.CloseProtocol {
		t.Fatalf("device sees %v; want the relay's close 0x%x", context.Cause(a.Context()), wire.CloseProtocol)
	}
	<-b.Context().Done()
}

// TestWebSocketMessageBound: a WebSocket message longer than a frame may
// be (a stream's buffer and the frame header) is a protocol error as soon
// as that many bytes have arrived: the relay does not buffer a message
// whose end may never come.
func TestWebSocketMessageBound(t *testing.T) {
	var raw *websocket.Conn
	_, b := wsPair(t, wsDefaults, wsDefaults, &raw)
	// By hand, one frame that says it carries 1 GiB (FIN, binary, masked
	// with a zero key, 64-bit length), then one byte more than the longest
	// mux frame: STREAM on stream 0 and data. The rest never comes. Every
	// byte sent is one the relay reads before it closes, so its close frame
	// is not lost to a reset.
	limit := 1 + 8 + wsDefaults.MaxStreamBuffer
	frame := []byte{0x82, 0x80 | 127}
	frame = binary.BigEndian.AppendUint64(frame, 1<<30)
	frame = append(frame, 0, 0, 0, 0)               // the mask key
	frame = append(frame, make([]byte, limit+1)...) // STREAM (0x00) on stream 0 (0x00), then zeros
	if _, err := raw.NetConn().Write(frame); err != nil {
		t.Fatal(err)
	}
	raw.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound on a failing test only
	_, _, err := raw.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != transport.WSCloseBase+wire.CloseProtocol {
		t.Fatalf("an endless message: %v, want close %d", err, transport.WSCloseBase+wire.CloseProtocol)
	}
	<-b.Context().Done()
}

// TestWebSocketMalformed: a frame that does not parse, of an unknown type,
// for a stream the device could not have opened (the relay's, one skipped,
// or a unidirectional ID, before or after its control stream), or a text
// message closes the connection with 0x1.
func TestWebSocketMalformed(t *testing.T) {
	type msg struct {
		typ  int
		data []byte
	}
	bin := func(p ...byte) msg { return msg{websocket.BinaryMessage, p} }
	control := bin(0x0, 0, 'L')
	for name, msgs := range map[string][]msg{
		"short":                        {bin(0)},
		"unknown type":                 {bin(0x7, 0)},
		"bad varint":                   {bin(0x0, 0xc0)},
		"reset, no code":               {bin(0x2, 0)},
		"out of order":                 {bin(0x0, 8, 'x')},
		"skipped ID":                   {control, bin(0x0, 8, 'x')},
		"relay's stream":               {bin(0x0, 1, 'x')},
		"relay's stream, later":        {control, bin(0x0, 5, 'x')},
		"unidirectional":               {bin(0x0, 2, 'x')},
		"unidirectional, later":        {control, bin(0x0, 2, 'x')},
		"unidirectional, relay's":      {control, bin(0x0, 3, 'x')},
		"unidirectional, reset, later": {control, bin(0x0, 4, 'x'), bin(0x2, 6, 0x1)},
		"text":                         {{websocket.TextMessage, []byte("hello")}},
	} {
		t.Run(name, func(t *testing.T) {
			var raw *websocket.Conn
			_, b := wsPair(t, wsDefaults, wsDefaults, &raw)
			for _, m := range msgs {
				if err := raw.WriteMessage(m.typ, m.data); err != nil {
					t.Fatal(err)
				}
			}
			raw.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound on a failing test only
			_, _, err := raw.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != transport.WSCloseBase+wire.CloseProtocol {
				t.Fatalf("after %x: %v, want close %d", msgs, err, transport.WSCloseBase+wire.CloseProtocol)
			}
			<-b.Context().Done()
		})
	}
}

// FuzzWebSocketFrames: whatever a peer sends in one message, the relay's
// end neither panics nor hangs: it takes the frame or closes with 0x1, and
// ends when the peer goes.
func FuzzWebSocketFrames(f *testing.F) {
	for _, seed := range [][]byte{
		{0x0, 0, 'L'}, {0x1, 0, 'L'}, {0x1, 0}, {0x2, 0, 0x1}, {0x2, 0, 0x80, 0, 0, 0x3},
		{0x0, 4, 'x'}, {0x0, 1, 'x'}, {0x7}, {}, {0x1, 0x40, 0x00, 'x'}, {0x2, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0x2},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var raw *websocket.Conn
		_, b := wsPair(t, wsDefaults, wsDefaults, &raw)
		if err := raw.WriteMessage(websocket.BinaryMessage, frame); err != nil {
			t.Fatal(err)
		}
		// A second frame after it: the connection still parses, or has
		// closed.
		raw.WriteMessage(websocket.BinaryMessage, []byte{0x0, 0, 'x'})
		raw.Close()
		select {
		case <-b.Context().Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("the relay's end outlived its peer after %x", frame)
		}
	})
}

// TestWebSocketStreamsWrittenOutOfOrder: streams opened in one order and
// first written in another (concurrent webhooks) all reach the peer: a
// stream takes its ID with its first frame.
func TestWebSocketStreamsWrittenOutOfOrder(t *testing.T) {
	a, b := wsPair(t, wsDefaults, wsDefaults, nil)
	var opened []transport.Stream
	for range peerStreams {
		s, err := b.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		opened = append(opened, s)
	}
	for i := len(opened) - 1; i >= 0; i-- {
		opened[i].Write([]byte{byte(i)})
		opened[i].Close()
	}
	seen := map[byte]bool{}
	for range peerStreams {
		r, err := a.AcceptStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || len(got) != 1 {
			t.Fatalf("read %v, %v", got, err)
		}
		seen[got[0]] = true
	}
	if len(seen) != peerStreams {
		t.Fatalf("streams seen: %v", seen)
	}
	if err := context.Cause(a.Context()); err != nil {
		t.Fatalf("the connection ended: %v", err)
	}
}
