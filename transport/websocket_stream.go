package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// wsStreamState is one stream of a multiplexed connection.
type wsStreamState struct {
	w        *WSConn // static
	incoming bool    // static: the peer opened it
	// id and opened are set once, with the stream's first frame (under
	// w.mu, by the writer for a stream this side opened); from then on
	// static. A stream the peer opened has them from the start.
	id     uint64
	opened bool
	// aborted: Abort was called; the writer sends no frame of the stream
	// from then on. Guarded by w.mu.
	aborted bool

	readable chan struct{} // signalled when data, an end or a read deadline change arrives
	written  chan error    // the writer's answer to the stream's queued frame

	// timer serves the stream's deadline waits, a Read's and a Write's,
	// which rarely overlap: made by the first wait, owned by whichever
	// wait holds timerBusy.
	timer     *time.Timer
	timerBusy atomic.Bool

	mu        sync.Mutex // guards the fields below
	buf       []byte     // received, unread
	recvFIN   bool       // the peer ended its side
	readErr   error      // a reset or the connection's end
	readDL    time.Time
	writeDL   time.Time
	sendEnded bool        // our side ended: FIN, reset, or the connection's end
	recvEnded bool        // the peer's side ended and was read to its end, or reset
	wtimer    *time.Timer // the timer a waiting Write watches: SetWriteDeadline moves it
}

// newWSStream returns a stream of w; one the peer opened has its ID.
func newWSStream(w *WSConn, id uint64, incoming bool) *wsStreamState {
	return &wsStreamState{w: w, id: id, opened: incoming, incoming: incoming,
		readable: make(chan struct{}, 1), written: make(chan error, 1)}
}

// untilDeadline is how long a timer waits for deadline; the zero time is
// none, as good as never.
func untilDeadline(deadline time.Time) time.Duration {
	if deadline.IsZero() {
		return math.MaxInt64
	}
	return time.Until(deadline)
}

// takeTimer returns a timer armed for d: the stream's own unless another
// wait of the stream holds it (a Read and a Write at once), then a new one.
// shared says which, for putTimer.
func (s *wsStreamState) takeTimer(d time.Duration) (t *time.Timer, shared bool) {
	if !s.timerBusy.CompareAndSwap(false, true) {
		return time.NewTimer(d), false
	}
	if s.timer == nil {
		s.timer = time.NewTimer(d)
	} else {
		s.timer.Reset(d)
	}
	return s.timer, true
}

func (s *wsStreamState) putTimer(t *time.Timer, shared bool) {
	t.Stop()
	if shared {
		s.timerBusy.Store(false)
	}
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
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return os.ErrDeadlineExceeded
	}
	t, shared := s.takeTimer(untilDeadline(deadline))
	defer s.putTimer(t, shared)
	select {
	case <-s.readable:
		return nil
	case <-t.C:
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
		return errWriteAfterEnd
	case !dl.IsZero() && !time.Now().Before(dl):
		return os.ErrDeadlineExceeded
	}
	return s.w.writeStream(s, typ, data, dl)
}

// Abort resets both sides with code. It does not wait for the RESET to be
// written: the writer sends it ahead of any stream data, and drops every
// frame of the stream still queued.
func (s *wsStreamState) Abort(code uint32) {
	s.mu.Lock()
	ended := s.sendEnded && s.recvEnded
	s.mu.Unlock()
	w := s.w
	w.mu.Lock()
	s.aborted = true
	opened, live := s.opened, w.closeErr == nil
	w.mu.Unlock()
	if !ended && opened && live { // a stream never written to is unknown to the peer
		w.queueControl(wsControl{id: s.id, code: code})
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
	defer s.mu.Unlock()
	s.writeDL = t
	if s.wtimer != nil { // a waiting Write picks up the new deadline
		s.wtimer.Reset(untilDeadline(t))
	}
	return nil
}
