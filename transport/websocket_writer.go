package transport

// The writer: one goroutine per multiplexed connection owns every write to
// the WebSocket, as derpserver's sendLoop owns its client's socket. Streams
// hand it their frames through a bounded queue and wait for each to be
// written (their data is written from the caller's buffer, never copied);
// the reader hands it pongs and RESETs through another, which drops what
// does not fit and counts it. Every write has a deadline, so a peer that
// stops reading holds the writer WriteTimeout at most; Close needs no lock
// the writer holds.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/quicvarint"
)

// Queue sizes. A stream waits for room in the send queue (each stream has
// at most one frame in it); the control queue is what the reader may get
// ahead of a writer that the peer stalls before it drops.
const (
	wsSendQueue    = 64
	wsControlQueue = 64
)

// wsWrite is one stream frame on its way to the writer. Whoever holds it
// last puts it back in wsWrites: the writer for a frame its sender gave up
// on while it was queued, the sender otherwise.
type wsWrite struct {
	s        *wsStreamState
	typ      byte
	data     []byte // the sender's: valid until the writer answers on s.written
	deadline time.Time
	state    atomic.Int32 // wsQueued, then wsTaken by the writer or wsCancelled by the sender
}

const (
	wsQueued = iota
	wsTaken
	wsCancelled
)

// wsWrites holds no channel: a pooled value may cross synctest bubbles.
var wsWrites = sync.Pool{New: func() any { return new(wsWrite) }}

func putWSWrite(f *wsWrite) {
	f.s, f.data = nil, nil
	wsWrites.Put(f)
}

// wsControl is a frame the writer sends for the connection: a pong, or a
// RESET (typ 0) of stream id with code.
type wsControl struct {
	typ  int
	id   uint64
	code uint32
	data string
}

// errWriteAfterEnd is a write on a stream whose side has ended (FIN or
// Abort), including one that was still queued when the stream was aborted.
var errWriteAfterEnd = errors.New("write on a stream after its end")

// writeStream hands one frame of s to the writer and waits until it is
// written, the stream's write deadline passes (SetWriteDeadline moves it
// meanwhile) or the connection ends. Once the writer has taken the frame,
// it waits for the write itself, which ends by the deadline the frame was
// queued with, or when the connection's end cuts it off.
func (w *WSConn) writeStream(s *wsStreamState, typ byte, data []byte, deadline time.Time) error {
	f := wsWrites.Get().(*wsWrite)
	f.s, f.typ, f.data, f.deadline = s, typ, data, deadline
	f.state.Store(wsQueued)
	t, shared := s.takeTimer(untilDeadline(deadline))
	s.mu.Lock()
	s.wtimer = t
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.wtimer = nil // before the timer may serve another wait
		s.mu.Unlock()
		s.putTimer(t, shared)
	}()
	queued := false
	for {
		send, written := w.send, (<-chan error)(nil)
		if queued {
			send, written = nil, s.written
		}
		var err error
		select {
		case send <- f:
			queued = true
			continue
		case err = <-written:
			putWSWrite(f)
			return err
		case <-t.C:
			s.mu.Lock()
			dl := s.writeDL
			if !dl.IsZero() && time.Now().Before(dl) {
				t.Reset(untilDeadline(dl)) // moved later meanwhile
				s.mu.Unlock()
				continue
			}
			s.mu.Unlock()
			if dl.IsZero() {
				continue // the deadline was lifted
			}
			err = os.ErrDeadlineExceeded
		case <-w.ctx.Done():
			err = context.Cause(w.ctx)
		}
		switch {
		case !queued:
			putWSWrite(f)
		case f.state.CompareAndSwap(wsQueued, wsCancelled):
			// The writer will find it cancelled and put it back.
		default:
			err = <-s.written
			putWSWrite(f)
		}
		return err
	}
}

// queueControl hands a control frame to the writer, or drops it if the
// writer is too far behind. It never blocks: the reader calls it.
func (w *WSConn) queueControl(c wsControl) {
	select {
	case w.control <- c:
	default:
		w.dropped(WSDropControlQueueFull)
	}
}

// write is the writer goroutine.
func (w *WSConn) write() {
	defer w.leave()
	var ping <-chan time.Time
	if w.opt.KeepAlive > 0 {
		t := time.NewTicker(w.opt.KeepAlive)
		defer t.Stop()
		ping = t.C
	}
	for {
		if w.ctx.Err() != nil {
			w.finish()
			return
		}
		// Control frames go first: they are small, and late ones are
		// worth less.
		select {
		case c := <-w.control:
			w.writeControl(c)
			continue
		default:
		}
		select {
		case <-w.ctx.Done():
		case c := <-w.control:
			w.writeControl(c)
		case f := <-w.send:
			w.writeQueued(f)
		case <-ping:
			w.writeOrEnd(w.c.WriteControl(wsPingMessage, nil, time.Now().Add(w.opt.WriteTimeout)))
		}
	}
}

// finish sends the close frame, if the end calls for one, and closes the
// WebSocket, which ends the reader too.
func (w *WSConn) finish() {
	w.mu.Lock()
	frame := w.closeFrame
	w.mu.Unlock()
	if frame != nil {
		w.c.WriteControl(wsCloseMessage, frame, time.Now().Add(wsCloseGrace))
	}
	w.c.Close()
}

// writeQueued writes a stream frame unless its sender gave up on it, and
// answers the sender.
func (w *WSConn) writeQueued(f *wsWrite) {
	if !f.state.CompareAndSwap(wsQueued, wsTaken) {
		putWSWrite(f)
		return
	}
	s := f.s
	s.written <- w.writeStreamFrame(s, f.typ, f.data, f.deadline)
}

// writeStreamFrame writes one frame of s; the first frame of a stream this
// side opened gives it the next ID.
func (w *WSConn) writeStreamFrame(s *wsStreamState, typ byte, data []byte, deadline time.Time) error {
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return os.ErrDeadlineExceeded
	}
	w.mu.Lock()
	switch {
	case w.closeErr != nil:
		err := w.closeErr
		w.mu.Unlock()
		return err
	case s.aborted:
		w.mu.Unlock()
		return errWriteAfterEnd
	}
	if !s.opened {
		s.id, s.opened = w.nextLocal, true
		w.nextLocal += 4
		w.streams[s.id] = s
	}
	id := s.id
	w.mu.Unlock()
	if d := time.Now().Add(w.opt.WriteTimeout); deadline.IsZero() || d.Before(deadline) {
		deadline = d
	}
	return w.writeOrEnd(w.writeMux(typ, id, data, deadline))
}

func (w *WSConn) writeControl(c wsControl) {
	deadline := time.Now().Add(w.opt.WriteTimeout)
	if c.typ == wsPongMessage {
		w.writeOrEnd(w.c.WriteControl(wsPongMessage, []byte(c.data), deadline))
		return
	}
	w.writeOrEnd(w.writeMux(wsReset, c.id, quicvarint.Append(nil, uint64(c.code)), deadline))
}

// writeMux writes one mux frame as one binary message.
func (w *WSConn) writeMux(typ byte, id uint64, rest []byte, deadline time.Time) error {
	var hdr [wsMaxFrameHeader]byte
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
	return err
}

// writeOrEnd ends the connection on a failed write: a frame half written
// leaves the WebSocket unusable.
func (w *WSConn) writeOrEnd(err error) error {
	if err == nil {
		return nil
	}
	if isTimeout(err) {
		w.dropped(WSDropWriteTimeout)
	}
	err = fmt.Errorf("websocket write: %w", err)
	w.end(err, nil)
	return err
}
