package transport

// This file carries device sessions over one WebSocket connection, for
// networks that let no UDP through (PROTOCOL §2.5). Streams are multiplexed
// in binary WebSocket messages, one frame per message:
//
//	type (1 byte) | stream ID (QUIC varint) | type-specific rest
//
//	0x00 STREAM      data
//	0x01 STREAM_FIN  data, then the end of the sender's side
//	0x02 RESET       code (QUIC varint): both sides of the stream end
//
// Stream IDs follow QUIC's bidirectional ones: the device (the WebSocket
// client) opens 0, 4, 8, ..., the relay 1, 5, 9, .... The first frame of
// an ID opens the stream; frames for a stream that has ended are ignored,
// as late frames. The connection closes with a WebSocket close frame whose
// status is 4000 plus the wire.Close* code. There is no flow control
// beyond TCP's: what a stream may buffer unread is bounded (a peer over it
// breaks the protocol), and the number of streams a peer may have open is
// bounded (more are reset with wire.StreamCancelled), as QUIC's stream
// limits would.
//
// Two goroutines use the WebSocket: read (this file) and write
// (websocket_writer.go), which owns every write, so that a peer that stops
// reading stalls no one but the writer, and that only until WriteTimeout.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/quicvarint"
)

// WebSocket frame types (PROTOCOL §2.5).
const (
	wsStream    = 0x00
	wsStreamFIN = 0x01
	wsReset     = 0x02
)

// WSCloseBase is added to a wire.Close* code to make the WebSocket close
// status (4000-4999 is the range for applications).
const WSCloseBase = 4000

// wsMaxFrameData bounds the data in one STREAM frame: longer writes are
// split, so that one large reply does not hold the connection for long.
const wsMaxFrameData = 16 << 10

// DefaultWSWriteTimeout is WSOptions.WriteTimeout's default.
const DefaultWSWriteTimeout = 10 * time.Second

// wsCloseGrace bounds sending the close frame: once a connection has ended,
// the WebSocket is closed this long later whether the frame went out or
// not (a writer stuck on a peer that does not read is cut off).
const wsCloseGrace = time.Second

// wsIdleReason is the reason text of the close frame that ends an idle
// connection (with wire.CloseNormal).
const wsIdleReason = "idle timeout"

// MessageConn is what a multiplexed session needs of a WebSocket
// connection: the methods *websocket.Conn has in gorilla/websocket (the
// device's) and in its fork fasthttp/websocket (the relay's).
type MessageConn interface {
	NextReader() (messageType int, r io.Reader, err error)
	NextWriter(messageType int) (io.WriteCloser, error)
	WriteControl(messageType int, data []byte, deadline time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	SetPingHandler(h func(appData string) error)
	SetPongHandler(h func(appData string) error)
	SetCloseHandler(h func(code int, text string) error)
	Close() error
	RemoteAddr() net.Addr
}

// WebSocket message types (RFC 6455 §11.8), as both packages number them.
const (
	wsBinaryMessage = 2
	wsCloseMessage  = 8
	wsPingMessage   = 9
	wsPongMessage   = 10
)

// WSOptions bound a multiplexed session.
type WSOptions struct {
	// Client is true on the device's side (it opens IDs 0, 4, 8, ...).
	Client bool
	// MaxIncomingStreams bounds the streams the peer may have open at
	// once; more are reset. MaxStreamBuffer bounds what one stream may
	// hold unread; a peer over it breaks the protocol (the connection
	// closes with wire.CloseProtocol, 0x1).
	MaxIncomingStreams int
	MaxStreamBuffer    int
	// IdleTimeout closes the connection (close frame 4000, "idle
	// timeout") when nothing at all (a frame, a ping, a pong) arrived for
	// this long; 0: never.
	IdleTimeout time.Duration
	// KeepAlive sends a WebSocket ping this often; 0: never.
	KeepAlive time.Duration
	// WriteTimeout bounds every write: a frame the peer has not taken in
	// this long (or by its stream's deadline, if sooner) ends the
	// connection. 0: DefaultWSWriteTimeout.
	WriteTimeout time.Duration
	// Dropped, if set, is told of every frame given up, with a WSDrop*
	// reason. It is called on the connection's goroutines: it must not
	// block.
	Dropped func(reason string)
}

// Reasons a multiplexed connection gives frames up (WSOptions.Dropped).
const (
	// WSDropControlQueueFull: a pong or a RESET was not sent, since the
	// writer was that far behind (the peer is not reading).
	WSDropControlQueueFull = "control_queue_full"
	// WSDropWriteTimeout: a frame the peer did not take in time; the
	// connection ended with it.
	WSDropWriteTimeout = "write_timeout"
)

// closeProtocol and closeNormal are wire.CloseProtocol and
// wire.CloseNormal; transport does not import wire.
const (
	closeNormal   = 0x0
	closeProtocol = 0x1
)

// WebSocket multiplexes device streams over c; it reads c until c fails or
// Close is called. remote, if set, replaces c.RemoteAddr (the caller's
// address from a PROXY protocol header). A server's upgrade handler must
// not return before Done: fasthttp reuses the connection's memory then.
func WebSocket(c MessageConn, remote net.Addr, opt WSOptions) *WSConn {
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = DefaultWSWriteTimeout
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	w := &WSConn{
		c: c, opt: opt, remote: remote, ctx: ctx, cancel: cancel,
		streams: make(map[uint64]*wsStreamState),
		accept:  make(chan *wsStreamState, max(opt.MaxIncomingStreams, 1)),
		send:    make(chan *wsWrite, wsSendQueue),
		control: make(chan wsControl, wsControlQueue),
		done:    make(chan struct{}),
	}
	if remote == nil {
		w.remote = c.RemoteAddr()
	}
	if opt.Client {
		w.nextLocal, w.nextPeer = 0, 1
	} else {
		w.nextLocal, w.nextPeer = 1, 0
	}
	// The handlers run on the reader, which must not block on the peer:
	// pongs go through the writer, and the close frame is answered by it.
	alive := func(string) error { w.extendIdle(); return nil }
	c.SetPongHandler(alive)
	c.SetPingHandler(func(data string) error {
		w.extendIdle()
		w.queueControl(wsControl{typ: wsPongMessage, data: data})
		return nil
	})
	c.SetCloseHandler(func(code int, text string) error {
		w.peerStatus, w.peerText = code, text
		return nil
	})
	w.extendIdle()
	w.users.Store(2)
	go w.read()
	go w.write()
	return w
}

// WSConn is a device session multiplexed over a WebSocket; it implements
// Conn.
type WSConn struct {
	c      MessageConn // static
	opt    WSOptions   // static
	remote net.Addr    // static
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when nothing uses c any more
	users  atomic.Int32  // goroutines using c (read, write); the last closes done

	send    chan *wsWrite  // stream frames for the writer; a sender waits for room
	control chan wsControl // pongs and RESETs for the writer; dropped when full

	// Owned by read.
	peerStatus int    // the peer's close frame status, once one arrived
	peerText   string // and its reason

	mu         sync.Mutex // guards the fields below
	streams    map[uint64]*wsStreamState
	nextLocal  uint64      // the ID this side opens next
	nextPeer   uint64      // the lowest ID the peer has not opened yet
	incoming   int         // open streams the peer opened
	closeErr   error       // set once the connection has ended
	closeFrame []byte      // the close frame's payload to send once ended; nil: none
	cutoff     *time.Timer // closes c wsCloseGrace after the end

	accept chan *wsStreamState // streams the peer opened, not yet accepted
}

// WSStreamError is a stream reset with a wire.Stream* code.
type WSStreamError struct {
	Code   uint32
	Remote bool
}

func (e *WSStreamError) Error() string {
	return fmt.Sprintf("websocket stream reset %s with code %#x", by(e.Remote), e.Code)
}

// by names the side that ended something.
func by(remote bool) string {
	if remote {
		return "by the peer"
	}
	return "locally"
}

// WSCloseError is the end of a multiplexed connection with a wire.Close*
// code.
type WSCloseError struct {
	Code   uint32
	Reason string
	Remote bool
}

func (e *WSCloseError) Error() string {
	return fmt.Sprintf("websocket session closed %s with code %#x: %s", by(e.Remote), e.Code, e.Reason)
}

// Done is closed once the connection has ended and nothing uses the
// WebSocket any more: at most wsCloseGrace after Close, whatever the peer
// does.
func (w *WSConn) Done() <-chan struct{} { return w.done }

func (w *WSConn) Context() context.Context { return w.ctx }
func (w *WSConn) RemoteAddr() net.Addr     { return w.remote }
func (w *WSConn) Kind() Kind               { return KindWebSocket }

func (w *WSConn) extendIdle() {
	if w.opt.IdleTimeout > 0 {
		w.c.SetReadDeadline(time.Now().Add(w.opt.IdleTimeout))
	}
}

// leave is called by each goroutine that uses c when it is done with it.
func (w *WSConn) leave() {
	if w.users.Add(-1) > 0 {
		return
	}
	w.mu.Lock()
	if w.cutoff != nil {
		w.cutoff.Stop()
	}
	w.mu.Unlock()
	close(w.done)
}

func (w *WSConn) OpenStream(ctx context.Context) (Stream, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closeErr != nil {
		return nil, w.closeErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The stream takes its ID with its first frame (the writer's
	// writeStream): IDs then reach the peer in order however the streams'
	// writers interleave.
	return newWSStream(w, 0, false), nil
}

func (w *WSConn) AcceptStream(ctx context.Context) (Stream, error) {
	select {
	case s := <-w.accept:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-w.ctx.Done():
		// Streams that arrived before the end are still handed out.
		select {
		case s := <-w.accept:
			return s, nil
		default:
			return nil, context.Cause(w.ctx)
		}
	}
}

// Close ends the connection with code and reason: every stream fails with
// a *WSCloseError at once, and the writer sends the close frame and closes
// the WebSocket. Close does not wait for the peer: the WebSocket is closed
// within wsCloseGrace whether or not the peer reads.
func (w *WSConn) Close(code uint32, reason string) error {
	if len(reason) > 120 { // a close frame carries at most 123 bytes of reason
		reason = reason[:120]
	}
	w.end(&WSCloseError{Code: code, Reason: reason}, wsClosePayload(WSCloseBase+int(code), reason))
	return nil
}

// wsClosePayload is a close frame's payload: the status, then the reason.
func wsClosePayload(status int, reason string) []byte {
	return append([]byte{byte(status >> 8), byte(status)}, reason...)
}

// end ends the connection and every stream with err, once; closeFrame, if
// set, is the close frame the writer sends before it closes the WebSocket.
// The error is in place before any close frame can reach the peer, so the
// peer's answer to it cannot pass for the cause.
func (w *WSConn) end(err error, closeFrame []byte) {
	w.mu.Lock()
	if w.closeErr != nil {
		w.mu.Unlock()
		return
	}
	w.closeErr = err
	w.closeFrame = closeFrame
	streams := w.streams
	w.streams = map[uint64]*wsStreamState{}
	w.cutoff = time.AfterFunc(wsCloseGrace, func() { w.c.Close() })
	w.mu.Unlock()
	w.cancel(err)
	for _, s := range streams {
		s.fail(err)
	}
}

// wsMaxFrameHeader is the longest mux frame header: a type byte and an
// 8-byte varint stream ID.
const wsMaxFrameHeader = 1 + 8

// readBuffers hold one message at a time while it is read and applied;
// what a stream keeps of it is copied out at its exact size. Pooled across
// connections, so that an idle session holds no buffer of its own.
var readBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// read reads frames until the connection fails. A message longer than the
// largest frame (MaxStreamBuffer of data and the longest header) breaks the
// protocol as soon as that much has arrived: reading waits for no message's
// end, which may never come. read never writes: what it answers goes
// through the writer.
func (w *WSConn) read() {
	defer w.leave()
	limit := int64(math.MaxInt64 - 1)
	if w.opt.MaxStreamBuffer > 0 {
		limit = int64(w.opt.MaxStreamBuffer) + wsMaxFrameHeader
	}
	for {
		typ, r, err := w.c.NextReader()
		if err != nil {
			w.readFailed(err)
			return
		}
		w.extendIdle()
		if w.ctx.Err() != nil {
			// Ended: what the peer still sends is read and dropped until
			// the writer closes c, so that closing a socket with unread
			// data (a TCP reset) does not destroy the close frame.
			io.Copy(io.Discard, r)
			continue
		}
		if typ != wsBinaryMessage {
			w.Close(closeProtocol, "text message")
			continue
		}
		buf := readBuffers.Get().(*bytes.Buffer)
		buf.Reset()
		n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
		switch {
		case err != nil:
			readBuffers.Put(buf)
			w.readFailed(err)
			return
		case n > limit:
			readBuffers.Put(buf)
			w.Close(closeProtocol, fmt.Sprintf("message over %d bytes", limit))
			continue
		}
		w.extendIdle()
		err = w.handle(buf.Bytes())
		readBuffers.Put(buf)
		if err != nil {
			w.Close(closeProtocol, err.Error())
		}
	}
}

// readFailed ends the connection with the error that ended reading: the
// peer's close (answered with the same status), the idle timeout (closed
// with a close frame that says so), or a failure of the connection.
func (w *WSConn) readFailed(err error) {
	w.mu.Lock()
	closed := w.closeErr != nil
	w.mu.Unlock()
	switch {
	case closed:
		// Our own end came first; this is its consequence.
	case w.peerStatus != 0:
		status, text := w.peerStatus, w.peerText
		var echo []byte
		if status != 1005 { // "no status received": an empty close frame is answered empty
			echo = wsClosePayload(status, "")
		}
		if status >= WSCloseBase && status < WSCloseBase+1000 {
			w.end(&WSCloseError{Code: uint32(status - WSCloseBase), Reason: text, Remote: true}, echo)
		} else {
			w.end(fmt.Errorf("websocket closed by the peer with status %d: %q", status, text), echo)
		}
	case isTimeout(err) && w.opt.IdleTimeout > 0:
		w.end(fmt.Errorf("websocket session idle for %v: %w", w.opt.IdleTimeout, err),
			wsClosePayload(WSCloseBase+closeNormal, wsIdleReason))
	default:
		w.end(err, nil)
	}
}

// isTimeout reports a deadline error, as net.Conn returns it or as the
// websocket packages rewrap it (hiding os.ErrDeadlineExceeded).
func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

var errBadFrame = errors.New("malformed frame")

// parseWSFrame splits one WebSocket message into a frame: its type, stream
// ID, and the data (STREAM, STREAM_FIN) or reset code (RESET).
func parseWSFrame(p []byte) (typ byte, id uint64, data []byte, code uint32, err error) {
	if len(p) < 2 {
		return 0, 0, nil, 0, errBadFrame
	}
	typ = p[0]
	id, n, err := quicvarint.Parse(p[1:])
	if err != nil {
		return 0, 0, nil, 0, errBadFrame
	}
	data = p[1+n:]
	switch typ {
	case wsStream, wsStreamFIN:
		return typ, id, data, 0, nil
	case wsReset:
		c, n, err := quicvarint.Parse(data)
		if err != nil || n != len(data) || c > 1<<32-1 {
			return 0, 0, nil, 0, errBadFrame
		}
		return typ, id, nil, uint32(c), nil
	}
	return 0, 0, nil, 0, fmt.Errorf("unknown frame type %#x", typ)
}

// handle applies one frame.
func (w *WSConn) handle(p []byte) error {
	typ, id, rest, code, err := parseWSFrame(p)
	if err != nil {
		return err
	}
	s, err := w.streamFor(id)
	if err != nil || s == nil {
		return err // nil, nil: a late frame for a stream that has ended
	}
	if typ == wsReset {
		s.fail(&WSStreamError{Code: code, Remote: true})
		s.sendDone() // the peer's reset ends our side too
		return nil
	}
	return s.receive(rest, typ == wsStreamFIN)
}

// streamFor returns the stream id names, opening it if the peer opens it
// with this frame; nil for a stream that has ended. An ID that neither side
// could have opened yet, or ever (QUIC's unidirectional IDs, 2 and 3 mod 4),
// breaks the protocol.
func (w *WSConn) streamFor(id uint64) (*wsStreamState, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.streams[id]; s != nil {
		return s, nil
	}
	if id&2 != 0 {
		return nil, fmt.Errorf("frame for stream %d, a unidirectional ID that no side opens", id)
	}
	peer := id&1 == w.nextPeer&1
	if !peer {
		if id >= w.nextLocal {
			return nil, fmt.Errorf("frame for stream %d, which this side never opened", id)
		}
		return nil, nil
	}
	if id < w.nextPeer {
		return nil, nil
	}
	if id != w.nextPeer {
		// QUIC opens skipped IDs implicitly; here the peer must open in
		// order, which every sender does anyway.
		return nil, fmt.Errorf("stream %d opened out of order (next is %d)", id, w.nextPeer)
	}
	w.nextPeer += 4
	if w.incoming >= w.opt.MaxIncomingStreams {
		// Over the peer's limit: refuse the stream, as QUIC's stream
		// credit would have kept it from opening.
		w.queueControl(wsControl{id: id, code: 0x1})
		return nil, nil
	}
	s := newWSStream(w, id, true)
	w.streams[id] = s
	w.incoming++
	w.accept <- s // room: at most MaxIncomingStreams are open
	return s, nil
}

// forget drops an ended stream.
func (w *WSConn) forget(s *wsStreamState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.opened && w.streams[s.id] == s {
		delete(w.streams, s.id)
		if s.incoming {
			w.incoming--
		}
	}
}

// dropped counts a frame given up.
func (w *WSConn) dropped(reason string) {
	if w.opt.Dropped != nil {
		w.opt.Dropped(reason)
	}
}
