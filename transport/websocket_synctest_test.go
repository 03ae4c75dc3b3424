package transport_test

// The WebSocket multiplexer's timeouts, in virtual time: both ends are
// gorilla/websocket over net.Pipe inside a testing/synctest bubble, so that
// an idle timeout or a stalled peer is asserted to the nanosecond and
// takes no real time. net.Pipe has no buffer: a peer that does not read
// blocks the writer at its first byte, as a full TCP window would.

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
)

// pipePair returns a device (a) and relay (b) end over net.Pipe; with raw
// set, the device's side is left to the test as a bare WebSocket (a nil).
// Call it inside the bubble.
func pipePair(t *testing.T, relayOpt, deviceOpt transport.WSOptions, raw **websocket.Conn) (a, b *transport.WSConn) {
	t.Helper()
	client, server := net.Pipe()
	ends := make(chan *transport.WSConn, 1)
	go func() {
		br := bufio.NewReader(server)
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Errorf("upgrade request: %v", err)
			server.Close()
			return
		}
		up := websocket.Upgrader{}
		c, err := up.Upgrade(&hijacker{conn: server, br: br, h: http.Header{}}, req, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		relayOpt.Client = false
		ends <- transport.WebSocket(c, nil, relayOpt)
	}()
	d := websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) { return client, nil }}
	c, _, err := d.Dial("ws://relay.test/connect", nil)
	if err != nil {
		t.Fatal(err)
	}
	b = <-ends
	t.Cleanup(func() { b.Close(0, ""); <-b.Done() })
	if raw != nil {
		*raw = c
		t.Cleanup(func() { c.Close() })
		return nil, b
	}
	deviceOpt.Client = true
	a = transport.WebSocket(c, nil, deviceOpt)
	t.Cleanup(func() { a.Close(0, ""); <-a.Done() })
	return a, b
}

// hijacker is the http.ResponseWriter an upgrade over a bare connection
// needs.
type hijacker struct {
	conn net.Conn
	br   *bufio.Reader
	h    http.Header
}

func (h *hijacker) Header() http.Header       { return h.h }
func (h *hijacker) Write([]byte) (int, error) { return 0, errors.New("hijacker: no body") }
func (h *hijacker) WriteHeader(int)           {}
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(h.br, bufio.NewWriter(h.conn)), nil
}

// TestWebSocketIdleAndKeepAlive: a silent device is closed exactly at the
// idle timeout, with a close frame that says so (4000, "idle timeout");
// one that pings, or sends empty frames, stays.
func TestWebSocketIdleAndKeepAlive(t *testing.T) {
	const idleTimeout = 60 * time.Second
	idle := wsDefaults
	idle.IdleTimeout = idleTimeout
	t.Run("silent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var raw *websocket.Conn
			_, b := pipePair(t, idle, wsDefaults, &raw)
			start := time.Now()
			_, _, err := raw.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != transport.WSCloseBase+wire.CloseNormal || ce.Text != "idle timeout" {
				t.Fatalf("a silent device read %v, want close %d \"idle timeout\"", err, transport.WSCloseBase+wire.CloseNormal)
			}
			if got := time.Since(start); got != idleTimeout {
				t.Fatalf("closed %v after its last frame, want the idle timeout, %v", got, idleTimeout)
			}
			<-b.Done()
		})
	})
	t.Run("pinging", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pinging := wsDefaults
			pinging.KeepAlive = 20 * time.Second
			a, b := pipePair(t, idle, pinging, nil)
			time.Sleep(5 * idleTimeout) // virtual: the passage of time is what is tested
			if err := context.Cause(b.Context()); err != nil {
				t.Fatalf("a pinging device was closed: %v", err)
			}
			open(t, a, b, "still here")
		})
	})
	t.Run("empty frames", func(t *testing.T) {
		// A browser page cannot ping: an empty STREAM frame on its
		// control stream keeps it (PROTOCOL §2.5).
		synctest.Test(t, func(t *testing.T) {
			var raw *websocket.Conn
			_, b := pipePair(t, idle, wsDefaults, &raw)
			for range 20 {
				if err := raw.WriteMessage(websocket.BinaryMessage, []byte{0x00, 0x00}); err != nil {
					t.Fatalf("empty STREAM frame: %v", err)
				}
				time.Sleep(idleTimeout - time.Second)
			}
			if err := context.Cause(b.Context()); err != nil {
				t.Fatalf("a device sending empty STREAM frames was closed: %v", err)
			}
		})
	})
}

// TestWebSocketStalledPeer: a peer with no Origin that opens every stream
// it may, floods the relay with frames that each open one more, and never
// reads. The relay's answers (RESETs) pile up on a writer stuck at its
// first byte: they are dropped and counted, no goroutine is started for
// any of them, and Close returns at once and frees the connection within
// the close grace (1 s), whatever the peer does.
func TestWebSocketStalledPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var drops atomic.Int64
		opt := wsDefaults
		opt.WriteTimeout = time.Hour // only Close may end this connection
		opt.Dropped = func(reason string) {
			if reason == transport.WSDropControlQueueFull {
				drops.Add(1)
			}
		}
		var raw *websocket.Conn
		_, b := pipePair(t, opt, wsDefaults, &raw)
		synctest.Wait()
		before := runtime.NumGoroutine()
		const flood = 5000
		for i := range peerStreams + flood {
			id := uint64(4 * i)
			frame := append([]byte{0x00}, varint(id)...)
			if err := raw.WriteMessage(websocket.BinaryMessage, frame); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
		}
		synctest.Wait()
		// Some slack for goroutines of the process outside the bubble.
		if n := runtime.NumGoroutine() - before; n > 10 {
			t.Errorf("%d goroutines more after %d refused streams, want none", n, flood)
		}
		// One RESET is stuck in the writer, the queue holds some: the
		// rest are dropped.
		if d := drops.Load(); d < flood-100 || d >= flood {
			t.Errorf("%d RESETs dropped of %d, want all but the queue's", d, flood)
		}
		if err := context.Cause(b.Context()); err != nil {
			t.Fatalf("the flood ended the connection: %v", err)
		}

		start := time.Now()
		b.Close(wire.CloseGoingAway, "draining")
		if got := time.Since(start); got != 0 {
			t.Fatalf("Close took %v on a peer that does not read", got)
		}
		if !transport.ClosedLocally(context.Cause(b.Context())) {
			t.Fatalf("after Close: %v, want closed locally", context.Cause(b.Context()))
		}
		<-b.Done()
		if got := time.Since(start); got != time.Second {
			t.Fatalf("the connection was freed %v after Close, want the close grace, 1s", got)
		}
	})
}

// TestWebSocketWriteTimeout: a peer that takes no data for WriteTimeout
// ends the connection; the write that waited fails, as does any later one.
func TestWebSocketWriteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 10 * time.Second
		var timeouts atomic.Int64
		opt := wsDefaults
		opt.WriteTimeout = timeout
		opt.Dropped = func(reason string) {
			if reason == transport.WSDropWriteTimeout {
				timeouts.Add(1)
			}
		}
		var raw *websocket.Conn
		_, b := pipePair(t, opt, wsDefaults, &raw)
		s, err := b.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := s.Write([]byte("MESSAGE")); err == nil {
			t.Fatal("a write to a peer that never reads succeeded")
		}
		if got := time.Since(start); got != timeout {
			t.Fatalf("the write failed after %v, want the write timeout, %v", got, timeout)
		}
		<-b.Context().Done()
		if timeouts.Load() != 1 {
			t.Fatalf("write timeouts counted: %d, want 1", timeouts.Load())
		}
		if _, err := s.Write([]byte("late")); err == nil {
			t.Fatal("a write after the connection ended succeeded")
		}
	})
}

// TestWebSocketWriteDeadlineMoves: a write queued behind a stalled one
// fails at its stream's deadline, and at once when the deadline is moved
// to the past (as a delivery's cancel does), without waiting for the
// writer.
func TestWebSocketWriteDeadlineMoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var raw *websocket.Conn
		_, b := pipePair(t, wsDefaults, wsDefaults, &raw)
		stuck, _ := b.OpenStream(context.Background())
		go stuck.Write([]byte("first")) // the writer blocks on it: nobody reads
		synctest.Wait()

		s, _ := b.OpenStream(context.Background())
		s.SetWriteDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		if _, err := s.Write([]byte("second")); !isDeadline(err) {
			t.Fatalf("queued write: %v, want a deadline error", err)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Fatalf("queued write failed after %v, want its deadline, 3s", got)
		}

		s2, _ := b.OpenStream(context.Background())
		s2.SetWriteDeadline(time.Now().Add(time.Hour))
		go func() {
			time.Sleep(time.Second)
			s2.SetWriteDeadline(time.Now())
		}()
		start = time.Now()
		if _, err := s2.Write([]byte("third")); !isDeadline(err) {
			t.Fatalf("write whose deadline moved: %v, want a deadline error", err)
		}
		if got := time.Since(start); got != time.Second {
			t.Fatalf("write failed %v after it began, want 1s, when its deadline moved", got)
		}
	})
}

func isDeadline(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// varint is the QUIC varint of v, for frames written by hand.
func varint(v uint64) []byte {
	switch {
	case v < 1<<6:
		return []byte{byte(v)}
	case v < 1<<14:
		return []byte{0x40 | byte(v>>8), byte(v)}
	}
	return []byte{0x80 | byte(v>>24), byte(v >> 16), byte(v >> 8), byte(v)}
}
