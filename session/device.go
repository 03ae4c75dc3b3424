package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pixelrelay/relay/internal/redact"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
)

// messageBufs holds the buffers Deliver encodes a MESSAGE into: the
// stream has copied or sent the bytes when Write returns.
var messageBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledMessage keeps the pool from holding the occasional 64 KiB
// body's buffer: bitmaps are ~2 KB, notifications a few hundred bytes.
const maxPooledMessage = 8 << 10

// core is what every live session has, whichever protocol carries it: the
// relay's own (device) or one a Link speaks (linked).
type core struct {
	srv  *Server        // static after construction
	kind transport.Kind // static
	id   uint64         // per-process sequence number; never derived from the token
	// ended is closed when the session is over: unbound, its replies read
	// and its connection closed.
	ended chan struct{}

	key     router.Key  // owned by the session's goroutine; set before the session is bound
	leaving atomic.Bool // sent away (GOAWAY, or a Link told to leave): the device is moving

	mu       sync.Mutex    // guards the fields below
	inflight int           // messages between the start of Deliver and its answer
	idle     chan struct{} // if set, closed when inflight drops to 0
}

func (s *Server) newCore(kind transport.Kind) core {
	return core{srv: s, kind: kind, id: s.nextID.Add(1), ended: make(chan struct{})}
}

// hasEnded reports whether the session is over.
func (c *core) hasEnded() bool {
	select {
	case <-c.ended:
		return true
	default:
		return false
	}
}

// begin counts a message in, unless the device is at its cap.
func (c *core) begin() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight >= c.srv.cfg.MaxInflight {
		return false
	}
	c.inflight++
	return true
}

func (c *core) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight--; c.inflight == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// settled returns a channel closed once no message is in flight.
func (c *core) settled() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle == nil {
		c.idle = make(chan struct{})
		if c.inflight == 0 {
			close(c.idle)
			ch := c.idle
			c.idle = nil
			return ch
		}
	}
	return c.idle
}

// Release implements router.Device: another node claims k, this session's
// token. A session sent away moves (it keeps k until its device leaves); a
// live one is taken over unless k's takeover budget is spent.
func (c *core) Release(k router.Key) (router.Claim, error) {
	if c.leaving.Load() {
		c.srv.moves.Inc()
		return router.Moved, nil
	}
	if ok, _ := c.srv.clones.Allow(k, time.Now()); !ok {
		return router.Free, router.ErrTakeoverLimited
	}
	return router.Taken, nil
}

// device is one logged-in session of the relay's own protocol, over any
// transport.Conn. It implements router.Device.
type device struct {
	core
	conn transport.Conn // static after construction

	ctrl   transport.Stream // control stream, set before the session is registered
	ctrlMu sync.Mutex       // serializes writes to ctrl

	version uint8 // negotiated minor version; set before the session is registered
}

func (d *device) base() *core { return &d.core }

// closeGoingAway ends the connection of a session that outstayed a drain.
func (d *device) closeGoingAway() { d.conn.Close(wire.CloseGoingAway, wire.ReasonDraining.String()) }

// writeCtrl writes one encoded control frame, bounded by ControlWriteTimeout
// so that a device that stopped reading cannot wedge a caller.
func (d *device) writeCtrl(frame []byte) error {
	return d.writeCtrlBy(time.Now().Add(d.srv.cfg.ControlWriteTimeout), frame)
}

func (d *device) writeCtrlBy(deadline time.Time, frame []byte) error {
	d.ctrlMu.Lock()
	defer d.ctrlMu.Unlock()
	d.ctrl.SetWriteDeadline(deadline)
	_, err := d.ctrl.Write(frame)
	return err
}

// Deliver sends m on a fresh stream and waits for the device's reply until
// ctx ends. When ctx is canceled (the caller went away) or its deadline
// passes, the stream is reset with 0x1 both ways; the error is router.
// ErrTimeout for the deadline and router.ErrCanceled (wrapping
// context.Cause(ctx)) for a cancel.
// Deliver never keeps m.Body after returning.
func (d *device) Deliver(ctx context.Context, m router.Message) (router.Reply, error) {
	if m.Query != "" && d.version < 2 {
		return router.Reply{}, router.ErrOutdated
	}
	if !d.begin() {
		return router.Reply{}, router.ErrBusy
	}
	defer d.end()

	str, err := d.conn.OpenStream(ctx)
	if err != nil {
		return router.Reply{}, d.deliveryErr(ctx, err)
	}
	frame := wire.Message{Mode: m.Mode, Query: m.Query, Body: m.Body}
	if dl, ok := ctx.Deadline(); ok {
		str.SetDeadline(dl)
		frame.Timeout = time.Until(dl)
	}
	// Wakes every blocked read and write at once on a cancel; the error
	// path below resets the stream.
	stop := context.AfterFunc(ctx, func() { str.SetDeadline(time.Now()) })
	defer stop()

	// One Write of the whole frame, then the FIN: each Write wakes the
	// connection's sender. quic-go's Write returns once it has copied or
	// framed the bytes, so the buffer goes back to the pool right after.
	buf := messageBufs.Get().(*[]byte)
	*buf = frame.AppendAt((*buf)[:0], d.version)
	if _, err = str.Write(*buf); err == nil {
		err = str.Close()
	}
	if cap(*buf) <= maxPooledMessage {
		messageBufs.Put(buf)
	}
	var rep wire.Reply
	if err == nil {
		rep, err = readReply(str)
	}
	if err == nil {
		// The reply may have raced a cancel: nobody is left to take it.
		err = router.Canceled(ctx)
	}
	if err != nil {
		str.Abort(wire.StreamCancelled)
		if isProtocolErr(err) {
			d.closeProtocol(err)
			return router.Reply{}, fmt.Errorf("%w: %v", router.ErrBadReply, err)
		}
		return router.Reply{}, d.deliveryErr(ctx, err)
	}
	if !json.Valid(rep.Body) {
		return router.Reply{}, fmt.Errorf("%w: reply body is not JSON", router.ErrBadReply)
	}
	return router.Reply{Status: int(rep.Status), Body: rep.Body}, nil
}

// readReply reads the device's REPLY frame and the end of the stream that
// must follow it.
func readReply(str transport.Stream) (wire.Reply, error) {
	t, p, err := wire.ReadFrame(str, 2+wire.MaxReplyBody)
	if err == io.EOF {
		err = fmt.Errorf("%w: stream ended without a reply", wire.ErrMalformed)
	}
	if err != nil {
		return wire.Reply{}, err
	}
	if err := wire.Expect(t, wire.FrameReply); err != nil {
		return wire.Reply{}, err
	}
	rep, err := wire.ParseReply(p)
	if err != nil {
		return wire.Reply{}, err
	}
	var one [1]byte
	switch n, err := str.Read(one[:]); {
	case n > 0:
		return wire.Reply{}, fmt.Errorf("%w: data after REPLY", wire.ErrMalformed)
	case err != io.EOF:
		return wire.Reply{}, err
	}
	return rep, nil
}

// deliveryErr maps a stream failure to the router's outcomes.
func (d *device) deliveryErr(ctx context.Context, err error) error {
	if err := router.Canceled(ctx); err != nil {
		return err
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), ctx.Err() != nil:
		return router.ErrTimeout
	case transport.ResetByPeer(err):
		// The device reset the stream: it refused the message.
		return fmt.Errorf("%w: %v", router.ErrBadReply, err)
	}
	// Anything else ends the whole connection, whose context may not
	// have caught up yet.
	return router.ErrGone
}

func isProtocolErr(err error) bool {
	return errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrTooLarge) ||
		errors.Is(err, wire.ErrUnexpected) || errors.Is(err, io.ErrUnexpectedEOF)
}

// errControlReset is the device resetting its control stream, which is
// never reset (PROTOCOL §7.4): a protocol error, and its close reason text.
var errControlReset = errors.New("control stream reset")

// ctrlErr names the protocol error in err, a control stream failure:
// errControlReset for a reset by the device, whatever its code and
// whichever way (a write finds STOP_SENDING, a read RESET_STREAM), so
// that the close reason is the same on every transport.
func (d *device) ctrlErr(err error) error {
	if transport.ResetByPeer(err) {
		return errControlReset
	}
	return err
}

// closeProtocol ends a connection whose peer broke the protocol. The error
// text names frame types and sizes only, never content.
func (d *device) closeProtocol(err error) {
	d.srv.protoErrs.Inc()
	d.srv.log.Info("device session closed: protocol error", "session", d.id, "transport", d.kind, "err", redact.Error(err))
	d.conn.Close(wire.CloseProtocol, err.Error())
}

// Close implements router.Device. A replaced session learns why from the
// close code; a GOAWAY frame would race the close and add nothing. The
// messages it was already sent are answered first (each ends by its
// webhook's deadline; the router sends nothing new here): a device that
// replaces its own session, moving from WebSocket back to QUIC, loses no
// webhook in between.
func (d *device) Close(reason router.CloseReason) {
	if reason == router.Replaced {
		d.srv.takeovers.Inc()
		go func() {
			select {
			case <-d.settled():
			case <-d.conn.Context().Done():
			}
			d.conn.Close(wire.CloseReplaced, wire.ReasonReplaced.String())
		}()
	}
}

// goAway tells the device to leave and come back after delay, to redirect
// if set. The device hangs up itself once its messages are answered; one
// that cannot even be told before ctx ends or ControlWriteTimeout passes
// is closed now.
func (d *device) goAway(ctx context.Context, reason wire.Reason, delay time.Duration, redirect string) {
	deadline := time.Now().Add(d.srv.cfg.ControlWriteTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	frame := wire.GoAway{Reason: reason, ReconnectAfter: delay, Redirect: redirect, Message: "relay is restarting"}.Append(nil)
	d.leaving.Store(true)
	switch err := d.writeCtrlBy(deadline, frame); {
	case transport.ResetByPeer(err):
		d.closeProtocol(errControlReset)
	case err != nil:
		d.conn.Close(wire.CloseGoingAway, reason.String())
	}
}
