package server_test

// Raw device sessions on each transport: a test writes control-stream
// bytes by hand, resets the control stream, reads frames, and reads the
// relay's close code and text, with no device package in between.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"
	"github.com/quic-go/webtransport-go"
)

// rawSession is one device connection with its control stream, driven by
// hand. Every wait is bounded by protoWait.
type rawSession interface {
	// send writes b on the control stream, opening it with the first call.
	send(b []byte)
	// reset resets the control stream both ways with code: QUIC's
	// RESET_STREAM and STOP_SENDING, WebSocket's RESET mux frame.
	reset(code uint32)
	// readFrame reads one frame from the control stream.
	readFrame() (wire.FrameType, []byte, error)
	// closed waits for the relay to close the connection and returns the
	// §7.3 code and reason text; anything else fails the test.
	closed() (code uint32, reason string)
	// hangUp closes the connection with 0x0, as a device does once it has
	// read a REFUSE of its LOGIN (§6.2).
	hangUp()
}

// rawTransports names a dial per device transport, for tests that run over
// each one.
var rawTransports = []struct {
	name string
	dial func(t *testing.T, e *relaytest.Relay) rawSession
}{
	{"quic", dialRawQUIC},
	{"webtransport", dialRawWebTransport},
	{"websocket", dialRawWebSocket},
}

// rawLogin logs in with token on s and fails the test unless WELCOME answers.
func rawLogin(t *testing.T, s rawSession, token string) {
	t.Helper()
	s.send(wire.Login{Version: wire.Version, Token: []byte(token), Agent: "raw-test"}.Append(nil))
	typ, p, err := s.readFrame()
	if err != nil || typ != wire.FrameWelcome {
		t.Fatalf("login answered with %s %q (%v), want WELCOME", typ, p, err)
	}
}

// rawRefusal reads the next frame and returns its REFUSE reason; any other
// frame fails the test.
func rawRefusal(t *testing.T, s rawSession) wire.Reason {
	t.Helper()
	typ, p, err := s.readFrame()
	if err != nil || typ != wire.FrameRefuse {
		t.Fatalf("got %s %q (%v), want REFUSE", typ, p, err)
	}
	r, err := wire.ParseRefuse(p)
	if err != nil {
		t.Fatalf("REFUSE: %v", err)
	}
	return r.Reason
}

// rawQUICSession is a raw QUIC or WebTransport session: both open QUIC
// streams, and differ only in how.
type rawQUICSession struct {
	t    *testing.T
	open func() (quicLikeStream, error)
	ctx  context.Context // ends with the connection
	// accept accepts a stream; once ctx has ended, its error carries the
	// relay's close (a WebTransport session's context does not).
	accept func(ctx context.Context) (quicLikeStream, error)
	close  func()
	ctrl   quicLikeStream
}

// quicLikeStream is the part of *quic.Stream and *webtransport.Stream these
// tests use.
type quicLikeStream interface {
	io.ReadWriteCloser
	CancelRead(code quic.StreamErrorCode)
	CancelWrite(code quic.StreamErrorCode)
	SetReadDeadline(time.Time) error
	SetDeadline(time.Time) error
}

func dialRawQUIC(t *testing.T, e *relaytest.Relay) rawSession {
	c := rawDial(t, e)
	return &rawQUICSession{t: t, ctx: c.Context(),
		open:   func() (quicLikeStream, error) { return c.OpenStream() },
		accept: func(ctx context.Context) (quicLikeStream, error) { return c.AcceptStream(ctx) },
		close:  func() { c.CloseWithError(wire.CloseNormal, "") },
	}
}

func dialRawWebTransport(t *testing.T, e *relaytest.Relay) rawSession {
	t.Helper()
	d := &webtransport.Transport{
		TLSClientConfig: e.TLS.Clone(),
		QUICConfig:      &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), protoWait)
	defer cancel()
	rsp, sess, err := d.Dial(ctx, "https://"+e.Addr+server.ConnectPath, nil)
	if err != nil || rsp.StatusCode != http.StatusOK {
		t.Fatalf("webtransport dial: %v", err)
	}
	t.Cleanup(func() { sess.CloseWithError(webtransport.SessionErrorCode(wire.CloseNormal), "test over") })
	return &rawQUICSession{t: t, ctx: sess.Context(),
		open: func() (quicLikeStream, error) {
			s, err := sess.OpenStream()
			return wtStream{s}, err
		},
		accept: func(ctx context.Context) (quicLikeStream, error) {
			s, err := sess.AcceptStream(ctx)
			return wtStream{s}, err
		},
		close: func() { sess.CloseWithError(webtransport.SessionErrorCode(wire.CloseNormal), "") },
	}
}

// wtStream gives *webtransport.Stream quic-go's cancel signatures.
type wtStream struct{ *webtransport.Stream }

func (s wtStream) CancelRead(c quic.StreamErrorCode) {
	s.Stream.CancelRead(webtransport.StreamErrorCode(c))
}

func (s wtStream) CancelWrite(c quic.StreamErrorCode) {
	s.Stream.CancelWrite(webtransport.StreamErrorCode(c))
}

func (r *rawQUICSession) stream() quicLikeStream {
	r.t.Helper()
	if r.ctrl == nil {
		s, err := r.open()
		if err != nil {
			r.t.Fatalf("open control stream: %v", err)
		}
		r.ctrl = s
	}
	return r.ctrl
}

func (r *rawQUICSession) send(b []byte) {
	r.t.Helper()
	if _, err := r.stream().Write(b); err != nil {
		r.t.Fatalf("write control stream: %v", err)
	}
}

func (r *rawQUICSession) reset(code uint32) {
	s := r.stream()
	s.CancelRead(quic.StreamErrorCode(code))
	s.CancelWrite(quic.StreamErrorCode(code))
}

// stopSending stops reading the control stream with code (STOP_SENDING
// alone): the relay's side of it is reset, the device's goes on.
func (r *rawQUICSession) stopSending(code uint32) {
	r.stream().CancelRead(quic.StreamErrorCode(code))
}

// answer serves one message stream in the background: it reads the
// MESSAGE to the relay's FIN, then writes reply and a FIN.
func (r *rawQUICSession) answer(reply []byte) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), protoWait)
		defer cancel()
		s, err := r.accept(ctx)
		if err != nil {
			ch <- err
			return
		}
		s.SetDeadline(time.Now().Add(protoWait))
		if _, err = io.ReadAll(s); err == nil {
			_, err = s.Write(reply)
		}
		if err == nil {
			err = s.Close()
		}
		ch <- err
	}()
	return ch
}

func (r *rawQUICSession) hangUp() { r.close() }

func (r *rawQUICSession) readFrame() (wire.FrameType, []byte, error) {
	s := r.stream()
	s.SetReadDeadline(time.Now().Add(protoWait))
	defer s.SetReadDeadline(time.Time{})
	return wire.ReadFrame(s, wire.MaxControlPayload)
}

func (r *rawQUICSession) closed() (uint32, string) {
	r.t.Helper()
	timer := time.NewTimer(protoWait)
	defer timer.Stop()
	select {
	case <-r.ctx.Done():
	case <-timer.C:
		r.t.Fatalf("relay did not close the connection within %v", protoWait)
	}
	_, err := r.accept(context.Background())
	code, reason, ok := transport.PeerCloseCode(err)
	if !ok {
		r.t.Fatalf("connection ended with %v; want a close from the relay", err)
	}
	return code, reason
}

// rawWSSession speaks PROTOCOL §2.5's mux frames by hand. A goroutine reads
// the connection: stream 0's data goes to ctrl, the close frame to end.
type rawWSSession struct {
	t    *testing.T
	c    *websocket.Conn
	ctrl *wsControl
	done chan struct{} // closed when reading ended; end is set then
	end  error
}

// wsControl is the relay's side of the control stream as read so far. The
// connection's reader never waits for the test to read it.
type wsControl struct {
	mu   sync.Mutex // guards the fields below
	buf  []byte
	err  error         // once set, what Read returns after buf
	more chan struct{} // signalled (capacity 1) when buf or err changes
}

func (w *wsControl) push(b []byte, err error) {
	w.mu.Lock()
	w.buf = append(w.buf, b...)
	if err != nil && w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	select {
	case w.more <- struct{}{}:
	default:
	}
}

func (w *wsControl) Read(p []byte) (int, error) {
	for {
		w.mu.Lock()
		n, err := copy(p, w.buf), w.err
		w.buf = w.buf[n:]
		w.mu.Unlock()
		switch {
		case n > 0:
			return n, nil
		case err != nil:
			return 0, err
		}
		<-w.more
	}
}

func dialRawWebSocket(t *testing.T, e *relaytest.Relay) rawSession {
	t.Helper()
	d := &websocket.Dialer{TLSClientConfig: e.TLS.Clone(), HandshakeTimeout: protoWait}
	c, _, err := d.Dial("wss://"+e.Addr+server.ConnectPath, nil)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(protoWait)) // bounds every read below
	r := &rawWSSession{t: t, c: c, ctrl: &wsControl{more: make(chan struct{}, 1)}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				r.end = err
				r.ctrl.push(nil, err)
				return
			}
			if len(m) < 2 {
				continue
			}
			id, n, err := quicvarint.Parse(m[1:])
			if err != nil || id != 0 {
				continue // the relay's message streams are not under test
			}
			switch m[0] {
			case 0x00:
				r.ctrl.push(m[1+n:], nil)
			case 0x01:
				r.ctrl.push(m[1+n:], io.EOF)
			case 0x02:
				r.ctrl.push(nil, errors.New("control stream reset by the relay"))
			}
		}
	}()
	return r
}

func (r *rawWSSession) write(m []byte) {
	r.t.Helper()
	if err := r.c.WriteMessage(websocket.BinaryMessage, m); err != nil {
		r.t.Fatalf("websocket write: %v", err)
	}
}

func (r *rawWSSession) send(b []byte) { r.write(append([]byte{0x00, 0x00}, b...)) }

func (r *rawWSSession) reset(code uint32) {
	r.write(quicvarint.Append([]byte{0x02, 0x00}, uint64(code)))
}

func (r *rawWSSession) hangUp() {
	r.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(transport.WSCloseBase+wire.CloseNormal, ""), time.Now().Add(protoWait))
	r.c.Close()
}

func (r *rawWSSession) readFrame() (wire.FrameType, []byte, error) {
	return wire.ReadFrame(r.ctrl, wire.MaxControlPayload)
}

func (r *rawWSSession) closed() (uint32, string) {
	r.t.Helper()
	<-r.done // bounded by the read deadline
	var ce *websocket.CloseError
	if !errors.As(r.end, &ce) || ce.Code < transport.WSCloseBase || ce.Code >= transport.WSCloseBase+1000 {
		r.t.Fatalf("connection ended with %v; want a close frame from the relay", r.end)
	}
	return uint32(ce.Code - transport.WSCloseBase), ce.Text
}
