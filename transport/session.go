package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
)

// session is one logged-in device. It implements router.Device.
type session struct {
	srv  *Server // static after construction
	conn Conn    // static after construction
	kind string  // transport name, for logs and metrics
	id   uint64  // per-process sequence number; never derived from the token

	ctrl   Stream     // control stream, set before the session is registered
	ctrlMu sync.Mutex // serializes writes to ctrl

	key router.Key // owned by the control loop (Server.Serve)

	mu       sync.Mutex    // guards the fields below
	inflight int           // messages between OpenStream and reply
	idle     chan struct{} // if set, closed when inflight drops to 0
}

// begin counts a message in, unless the device is at its cap.
func (s *session) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight >= s.srv.cfg.MaxInflight {
		return false
	}
	s.inflight++
	return true
}

func (s *session) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight--; s.inflight == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// settled returns a channel closed once no message is in flight.
func (s *session) settled() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle == nil {
		s.idle = make(chan struct{})
		if s.inflight == 0 {
			close(s.idle)
			c := s.idle
			s.idle = nil
			return c
		}
	}
	return s.idle
}

// writeCtrl writes one encoded control frame, bounded by a deadline so that
// a device that stopped reading cannot wedge a caller.
func (s *session) writeCtrl(frame []byte) error {
	s.ctrlMu.Lock()
	defer s.ctrlMu.Unlock()
	s.ctrl.SetWriteDeadline(time.Now().Add(s.srv.cfg.ControlWriteTimeout))
	_, err := s.ctrl.Write(frame)
	return err
}

// Deliver sends m on a fresh stream and waits for the device's reply until
// ctx ends. It never keeps m.Body after returning.
func (s *session) Deliver(ctx context.Context, m router.Message) (router.Reply, error) {
	if !s.begin() {
		return router.Reply{}, router.ErrBusy
	}
	defer s.end()

	str, err := s.conn.OpenStream(ctx)
	if err != nil {
		return router.Reply{}, s.deliveryErr(ctx, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		str.SetDeadline(dl)
	} else {
		stop := context.AfterFunc(ctx, func() { str.SetDeadline(time.Now()) })
		defer stop()
	}

	var hdr [wire.HeaderLen + 1 + wire.MaxModeLen]byte
	if _, err = str.Write(wire.AppendMessageHeader(hdr[:0], m.Mode, len(m.Body))); err == nil {
		if _, err = str.Write(m.Body); err == nil {
			err = str.Close()
		}
	}
	var rep wire.Reply
	if err == nil {
		rep, err = readReply(str)
	}
	if err != nil {
		str.Abort(wire.StreamCancelled)
		if isProtocolErr(err) {
			s.closeProtocol(err)
			return router.Reply{}, fmt.Errorf("%w: %v", router.ErrBadReply, err)
		}
		return router.Reply{}, s.deliveryErr(ctx, err)
	}
	if !json.Valid(rep.Body) {
		return router.Reply{}, fmt.Errorf("%w: reply body is not JSON", router.ErrBadReply)
	}
	return router.Reply{Status: int(rep.Status), Body: rep.Body}, nil
}

// readReply reads the device's Reply frame and the end of the stream that
// must follow it.
func readReply(str Stream) (wire.Reply, error) {
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
func (s *session) deliveryErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), ctx.Err() != nil:
		return router.ErrTimeout
	case resetByPeer(err):
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

// closeProtocol ends a connection whose peer broke the protocol. The error
// text names frame types and sizes only, never content.
func (s *session) closeProtocol(err error) {
	s.srv.protoErrs.Inc()
	s.srv.log.Info("device session closed: protocol error", "session", s.id, "transport", s.kind, "err", err)
	s.conn.Close(wire.CloseProtocol, err.Error())
}

// Close implements router.Device. A replaced session learns why from the
// close code; a GoAway frame would race the close and add nothing.
func (s *session) Close(reason router.CloseReason) {
	if reason == router.Replaced {
		s.srv.takeovers.Inc()
		s.conn.Close(wire.CloseReplaced, wire.ReasonReplaced.String())
	}
}

// goAway tells the device to leave and come back after delay. The device
// hangs up itself once its messages are answered; if it cannot even be told,
// it is closed now.
func (s *session) goAway(reason wire.Reason, delay time.Duration) {
	frame := wire.GoAway{Reason: reason, ReconnectAfter: delay, Message: "relay is restarting"}.Append(nil)
	if err := s.writeCtrl(frame); err != nil {
		s.conn.Close(wire.CloseGoingAway, reason.String())
	}
}
