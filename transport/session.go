package transport

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

	key      router.Key   // owned by the control loop (Server.Serve)
	inflight atomic.Int32 // messages between OpenStream and reply
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
	if s.inflight.Add(1) > int32(s.srv.cfg.MaxInflight) {
		s.inflight.Add(-1)
		return router.Reply{}, router.ErrBusy
	}
	defer s.inflight.Add(-1)

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
