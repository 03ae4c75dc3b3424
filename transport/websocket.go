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
// Stream IDs follow QUIC's: the device (the WebSocket client) opens 0, 4,
// 8, ..., the relay 1, 5, 9, .... The first frame of an ID opens the
// stream; frames for a stream that has ended are ignored, as late frames.
// The connection closes with a WebSocket close frame whose status is 4000
// plus the wire.Close* code. There is no flow control beyond TCP's: what a
// stream may buffer unread is bounded (a peer over it breaks the protocol),
// and the number of streams a peer may have open is bounded (more are
// reset with wire.StreamCancelled), as QUIC's stream limits would.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
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
	// Client is true on the device's side (it opens even stream IDs).
	Client bool
	// MaxIncomingStreams bounds the streams the peer may have open at
	// once; more are reset. MaxStreamBuffer bounds what one stream may
	// hold unread; a peer over it breaks the protocol (the connection
	// closes with wire.CloseProtocol, 0x1).
	MaxIncomingStreams int
	MaxStreamBuffer    int
	// IdleTimeout closes the connection when nothing at all (a frame, a
	// ping, a pong) arrived for this long; 0: never.
	IdleTimeout time.Duration
	// KeepAlive sends a WebSocket ping this often; 0: never.
	KeepAlive time.Duration
	// PeerClose reads the status and text of the peer's close frame out of
	// the error ReadMessage returned (each websocket package has its own
	// CloseError type).
	PeerClose func(err error) (status int, text string, ok bool)
}

// closeProtocol is wire.CloseProtocol; transport does not import wire.
const closeProtocol = 0x1

// WebSocket multiplexes device streams over c; it reads c until c fails or
// Close is called. remote, if set, replaces c.RemoteAddr (the caller's
// address from a PROXY protocol header). A server's upgrade handler must
// not return before Done: fasthttp reuses the connection's memory then.
func WebSocket(c MessageConn, remote net.Addr, opt WSOptions) *WSConn {
	ctx, cancel := context.WithCancelCause(context.Background())
	w := &WSConn{
		c: c, opt: opt, remote: remote, ctx: ctx, cancel: cancel,
		streams: make(map[uint64]*wsStreamState),
		accept:  make(chan *wsStreamState, max(opt.MaxIncomingStreams, 1)),
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
	alive := func(string) error { w.extendIdle(); return nil }
	c.SetPongHandler(alive)
	c.SetPingHandler(func(data string) error {
		w.extendIdle()
		w.writeControl(wsPongMessage, []byte(data))
		return nil
	})
	w.extendIdle()
	var users sync.WaitGroup // the goroutines that use c
	users.Go(w.read)
	if opt.KeepAlive > 0 {
		users.Go(w.keepAlive)
	}
	go func() {
		users.Wait()
		close(w.done)
	}()
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

	writeMu sync.Mutex // serializes writes to c, and guards cClosed
	cClosed bool       // c is closed: nothing may write to it

	mu        sync.Mutex // guards the fields below
	streams   map[uint64]*wsStreamState
	nextLocal uint64 // the ID this side opens next
	nextPeer  uint64 // the lowest ID the peer has not opened yet
	incoming  int    // open streams the peer opened
	closeErr  error  // set once the connection has ended

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
// WebSocket any more.
func (w *WSConn) Done() <-chan struct{} { return w.done }

func (w *WSConn) Context() context.Context { return w.ctx }
func (w *WSConn) RemoteAddr() net.Addr     { return w.remote }

func (w *WSConn) extendIdle() {
	if w.opt.IdleTimeout > 0 {
		w.c.SetReadDeadline(time.Now().Add(w.opt.IdleTimeout))
	}
}

func (w *WSConn) keepAlive() {
	t := time.NewTicker(w.opt.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
			w.writeControl(wsPingMessage, nil)
		}
	}
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
	// The stream takes its ID with its first frame (writeFrame): IDs then
	// reach the peer in order however the streams' writers interleave.
	return &wsStreamState{w: w, readable: make(chan struct{}, 1)}, nil
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

// Close sends the close frame with code and reason, then closes the
// connection. The peer's streams and ours end with a *WSCloseError.
func (w *WSConn) Close(code uint32, reason string) error {
	if len(reason) > 120 { // a close frame carries at most 123 bytes of reason
		reason = reason[:120]
	}
	status := WSCloseBase + int(code)
	w.writeControl(wsCloseMessage, append([]byte{byte(status >> 8), byte(status)}, reason...))
	w.end(&WSCloseError{Code: code, Reason: reason})
	return nil
}

// writeControl sends a control frame unless c is closed.
func (w *WSConn) writeControl(typ int, data []byte) {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	if !w.cClosed {
		w.c.WriteControl(typ, data, time.Now().Add(time.Second))
	}
}

// end ends the connection and every stream with err, once.
func (w *WSConn) end(err error) {
	w.mu.Lock()
	if w.closeErr != nil {
		w.mu.Unlock()
		return
	}
	w.closeErr = err
	streams := w.streams
	w.streams = map[uint64]*wsStreamState{}
	w.mu.Unlock()
	for _, s := range streams {
		s.fail(err)
	}
	w.cancel(err)
	w.writeMu.Lock()
	w.cClosed = true
	w.c.Close() // ends the reader
	w.writeMu.Unlock()
}

// wsMaxFrameHeader is the longest mux frame header: a type byte and an
// 8-byte varint stream ID.
const wsMaxFrameHeader = 1 + 8

// readBuffers hold one message at a time while it is read and applied;
// what a stream keeps of it is copied out at its exact size. Pooled across
// connections, so that an idle session holds no buffer of its own.
var readBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// read reads frames until the connection fails. A message longer than the
// largest frame (MaxStreamBuffer of data) breaks the protocol as soon as
// that much has arrived: reading waits for no message's end, which may
// never come.
func (w *WSConn) read() {
	limit := int64(math.MaxInt64 - 1)
	if w.opt.MaxStreamBuffer > 0 {
		limit = int64(w.opt.MaxStreamBuffer) + wsMaxFrameHeader
	}
	for {
		typ, r, err := w.c.NextReader()
		if err != nil {
			w.end(w.readError(err))
			return
		}
		w.extendIdle()
		if typ != wsBinaryMessage {
			w.Close(closeProtocol, "text message")
			return
		}
		buf := readBuffers.Get().(*bytes.Buffer)
		buf.Reset()
		n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
		switch {
		case err != nil:
			readBuffers.Put(buf)
			w.end(w.readError(err))
			return
		case n > limit:
			readBuffers.Put(buf)
			w.Close(closeProtocol, fmt.Sprintf("message over %d bytes", limit))
			return
		}
		w.extendIdle()
		err = w.handle(buf.Bytes())
		readBuffers.Put(buf)
		if err != nil {
			w.Close(closeProtocol, err.Error())
			return
		}
	}
}

// readError turns the error that ended reading into what streams and the
// context report: the peer's close code, our own close, or the failure.
func (w *WSConn) readError(err error) error {
	w.mu.Lock()
	closed := w.closeErr
	w.mu.Unlock()
	if closed != nil {
		return closed
	}
	if w.opt.PeerClose != nil {
		if status, text, ok := w.opt.PeerClose(err); ok && status >= WSCloseBase && status < WSCloseBase+1000 {
			return &WSCloseError{Code: uint32(status - WSCloseBase), Reason: text, Remote: true}
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("websocket session idle for %v: %w", w.opt.IdleTimeout, err)
	}
	return err
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
// with this frame; nil for a stream that has ended.
func (w *WSConn) streamFor(id uint64) (*wsStreamState, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.streams[id]; s != nil {
		return s, nil
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
		go w.writeRaw(wsReset, id, quicvarint.Append(nil, 0x1), time.Time{})
		return nil, nil
	}
	s := &wsStreamState{w: w, id: id, opened: true, incoming: true, readable: make(chan struct{}, 1)}
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

// writeFrame sends one frame of s, by deadline if it is set; the first
// frame of a stream this side opened gives it the next ID.
func (w *WSConn) writeFrame(s *wsStreamState, typ byte, rest []byte, deadline time.Time) error {
	w.writeMu.Lock()
	if w.cClosed {
		w.writeMu.Unlock()
		return context.Cause(w.ctx)
	}
	w.mu.Lock()
	if !s.opened {
		s.id, s.opened = w.nextLocal, true
		w.nextLocal += 4
		w.streams[s.id] = s
	}
	id := s.id
	w.mu.Unlock()
	return w.writeLocked(typ, id, rest, deadline)
}

// writeRaw sends one frame for stream id.
func (w *WSConn) writeRaw(typ byte, id uint64, rest []byte, deadline time.Time) error {
	w.writeMu.Lock()
	if w.cClosed {
		w.writeMu.Unlock()
		return context.Cause(w.ctx)
	}
	return w.writeLocked(typ, id, rest, deadline)
}

// writeLocked writes one frame; w.writeMu is held, and released.
func (w *WSConn) writeLocked(typ byte, id uint64, rest []byte, deadline time.Time) error {
	var hdr [1 + 8]byte
	h := quicvarint.Append(append(hdr[:0], typ), id)
	w.c.SetWriteDeadline(deadline)
	// Header and data go into the connection's write buffer as one
	// message, with no copy of their own.
	mw, err := w.c.NextWriter(wsBinaryMessage)
	if err == nil {
		_, err = mw.Write(h)
	}
	if err == nil && len(rest) > 0 {
		_, err = mw.Write(rest)
	}
	if mw != nil {
		if cerr := mw.Close(); err == nil {
			err = cerr
		}
	}
	w.writeMu.Unlock()
	if err != nil {
		// A frame half written leaves the connection unusable.
		err = fmt.Errorf("websocket write: %w", err)
		w.end(err)
	}
	return err
}

// wsStreamState is one stream of a multiplexed connection.
type wsStreamState struct {
	w        *WSConn // static
	incoming bool    // static: the peer opened it
	// id and opened are set once, with the stream's first frame (under
	// w.mu, and w.writeMu for a stream this side opened); from then on
	// static. A stream the peer opened has them from the start.
	id     uint64
	opened bool

	readable chan struct{} // signalled when data, an end or a deadline change arrives

	mu        sync.Mutex // guards the fields below
	buf       []byte     // received, unread
	recvFIN   bool       // the peer ended its side
	readErr   error      // a reset or the connection's end
	readDL    time.Time
	writeDL   time.Time
	sendEnded bool // our side ended: FIN, reset, or the connection's end
	recvEnded bool // the peer's side ended and was read to its end, or reset
}

func (s *wsStreamState) signal() {
	select {
	case s.readable <- struct{}{}:
	default:
	}
}

// receive appends data from the peer.
func (s *wsStreamState) receive(data []byte, fin bool) error {
	s.mu.Lock()
	if s.recvFIN {
		s.mu.Unlock()
		return fmt.Errorf("data on stream %d after its end", s.id)
	}
	if s.readErr == nil {
		if len(s.buf)+len(data) > s.w.opt.MaxStreamBuffer {
			s.mu.Unlock()
			return fmt.Errorf("stream %d over its %d-byte buffer", s.id, s.w.opt.MaxStreamBuffer)
		}
		s.buf = append(s.buf, data...) // data is the read buffer's: copy
	}
	s.recvFIN = fin
	s.mu.Unlock()
	s.signal()
	return nil
}

// fail ends reading with err (a reset or the connection's end).
func (s *wsStreamState) fail(err error) {
	s.mu.Lock()
	if s.readErr == nil {
		s.readErr = err
		s.buf = nil
	}
	s.recvEnded = true
	done := s.sendEnded
	s.mu.Unlock()
	s.signal()
	if done {
		s.w.forget(s)
	}
}

// sendDone marks our side ended and forgets the stream once both are.
func (s *wsStreamState) sendDone() {
	s.mu.Lock()
	s.sendEnded = true
	done := s.recvEnded
	s.mu.Unlock()
	if done {
		s.w.forget(s)
	}
}

func (s *wsStreamState) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		switch {
		case len(s.buf) > 0:
			n := copy(p, s.buf)
			s.buf = s.buf[n:]
			if len(s.buf) == 0 {
				s.buf = nil
			}
			s.mu.Unlock()
			return n, nil
		case s.readErr != nil:
			err := s.readErr
			s.mu.Unlock()
			return 0, err
		case s.recvFIN && len(s.buf) == 0:
			first := !s.recvEnded
			s.recvEnded = true
			done := s.sendEnded
			s.mu.Unlock()
			if first && done {
				s.w.forget(s)
			}
			return 0, io.EOF
		}
		dl := s.readDL
		s.mu.Unlock()
		if err := s.wait(dl); err != nil {
			return 0, err
		}
	}
}

// wait blocks until something may have changed or the deadline passes.
func (s *wsStreamState) wait(deadline time.Time) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-s.readable:
		return nil
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-s.w.ctx.Done():
		// A stream that never sent a frame is not in the connection's
		// map, so end did not fail it.
		s.fail(context.Cause(s.w.ctx))
		return nil
	}
}

func (s *wsStreamState) Write(p []byte) (int, error) {
	n := 0
	for {
		chunk := p[n:min(len(p), n+wsMaxFrameData)]
		if err := s.send(wsStream, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		if n == len(p) {
			return n, nil
		}
	}
}

// Close ends our side (FIN); reading may go on.
func (s *wsStreamState) Close() error {
	if err := s.send(wsStreamFIN, nil); err != nil {
		return err
	}
	s.sendDone()
	return nil
}

// send writes one frame on our side of the stream, unless it has ended.
func (s *wsStreamState) send(typ byte, data []byte) error {
	s.mu.Lock()
	ended, dl, rerr := s.sendEnded, s.writeDL, s.readErr
	s.mu.Unlock()
	var se *WSStreamError
	switch {
	case errors.As(rerr, &se) && se.Remote:
		return rerr // the peer reset the stream
	case ended:
		return errors.New("write on a stream after its end")
	case !dl.IsZero() && !time.Now().Before(dl):
		return os.ErrDeadlineExceeded
	}
	return s.w.writeFrame(s, typ, data, dl)
}

// Abort resets both sides with code.
func (s *wsStreamState) Abort(code uint32) {
	s.mu.Lock()
	ended := s.sendEnded && s.recvEnded
	s.mu.Unlock()
	s.w.mu.Lock()
	opened := s.opened
	s.w.mu.Unlock()
	if !ended && opened { // a stream never written to is unknown to the peer
		s.w.writeFrame(s, wsReset, quicvarint.Append(nil, uint64(code)), time.Now().Add(time.Second))
	}
	s.fail(&WSStreamError{Code: code})
	s.sendDone()
}

func (s *wsStreamState) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *wsStreamState) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.readDL = t
	s.mu.Unlock()
	s.signal() // a blocked Read picks up the new deadline
	return nil
}

func (s *wsStreamState) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.writeDL = t
	s.mu.Unlock()
	return nil
}
