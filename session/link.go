package session

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
)

// member is one live session, whichever protocol carries it: what admit
// counts and Drain sends away.
type member interface {
	base() *core
	// goAway tells the device to leave and come back after delay.
	goAway(ctx context.Context, reason wire.Reason, delay time.Duration, redirect string)
	// closeGoingAway ends a session that outstayed a drain.
	closeGoingAway()
}

// A Link is a device session in a protocol other than the relay's own: a
// stock clock's MQTT connection (package mqtt). The Link's package reads
// the device's login and carries its messages; the Server admits, binds,
// limits, takes over and drains the session as it does every other (Join).
type Link interface {
	// Kind is the transport, for the metrics and the logs.
	Kind() transport.Kind
	// Deliver hands m to the device and waits for its answer, as
	// router.Dest's Deliver; the Server has counted m against MaxInflight.
	Deliver(ctx context.Context, m router.Message) (router.Reply, error)
	// Close ends the connection now; r says why (ReasonReplaced: a newer
	// login took the token over; ReasonDraining: the relay is draining
	// and the device's turn to leave has come). It must not block for
	// long, and the Link's package calls its LinkSession's End once the
	// connection is over.
	Close(r wire.Reason)
}

// LinkSession is a Link's place among the live sessions, from Join to End.
type LinkSession struct {
	core
	link Link // static
	once sync.Once
	// closing is set once the relay has decided to close the Link (its
	// drain turn came, or a newer login took its token), before it waits
	// for the messages in flight: a message that begins after that is not
	// handed to the Link, whose connection may be closing under it.
	closing atomic.Bool
}

func (l *LinkSession) base() *core { return &l.core }

// Join logs a Link's device in with tok, as LOGIN does in the relay's own
// protocol: the same refusals in the same order (all but the version's),
// the same device cap, the same takeover rules, and the token bound in the
// router, cluster-wide. It returns the session once the device is live, and
// then End must follow; or the Reason the login is refused with and a
// message for the device, counted in relay_login_refusals_total. tok is not
// kept.
func (s *Server) Join(ctx context.Context, l Link, tok []byte) (*LinkSession, wire.Reason, string) {
	ls := &LinkSession{core: s.newCore(l.Kind()), link: l}
	if r, msg := s.enter(ctx, ls, ls, tok); r != 0 {
		s.log.Debug("device login refused", "session", ls.id, "transport", ls.kind, "reason", r)
		s.refusals[r].Inc()
		close(ls.ended)
		return nil, r, msg
	}
	s.logins[ls.kind].Inc()
	s.log.Debug("device session opened", "session", ls.id, "transport", ls.kind)
	return ls, 0, ""
}

// End takes the session out of the live ones and unbinds its token, here
// and on every node; the Link's package calls it once its connection is
// over. Calls after the first do nothing.
func (l *LinkSession) End() {
	l.once.Do(func() {
		l.srv.leave(l)
		l.srv.unbind(&l.core, l)
		close(l.ended)
		l.srv.log.Debug("device session closed", "session", l.id, "transport", l.kind)
	})
}

// Deliver implements router.Device.
func (l *LinkSession) Deliver(ctx context.Context, m router.Message) (router.Reply, error) {
	if !l.begin() {
		return router.Reply{}, router.ErrBusy
	}
	defer l.end()
	// After begin: a close that has not seen this message in flight set
	// closing first (beginClose), so it cannot be missed here.
	if l.closing.Load() {
		return router.Reply{}, router.ErrGone // not sent
	}
	return l.link.Deliver(ctx, m)
}

// Close implements router.Device: as for the relay's own sessions, a
// replaced session answers what it was already sent before it closes.
func (l *LinkSession) Close(reason router.CloseReason) {
	if reason == router.Replaced {
		l.srv.takeovers.Inc()
		go func() {
			select {
			case <-l.beginClose():
			case <-l.ended:
			}
			l.link.Close(wire.ReasonReplaced)
		}()
	}
}

// goAway: a Link's protocol may have no way to say go-away (MQTT 3.1.1
// has none), so the relay itself closes the connection after delay, once
// the messages in flight are answered: a fleet of such devices reconnects
// spread over the window as one told with GOAWAY does. The session keeps
// its token meanwhile and moves (Release) if the device logs in elsewhere.
func (l *LinkSession) goAway(ctx context.Context, _ wire.Reason, delay time.Duration, _ string) {
	l.leaving.Store(true)
	go func() {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return // Drain closes it (closeGoingAway)
		case <-l.ended:
			return
		}
		select {
		case <-l.beginClose():
			l.link.Close(wire.ReasonDraining)
		case <-ctx.Done():
		case <-l.ended:
		}
	}()
}

func (l *LinkSession) closeGoingAway() { l.link.Close(wire.ReasonDraining) }

// beginClose marks the session closing and returns a channel closed once
// the messages already in flight are answered; the Link is closed then.
// Without the mark a message could begin between the two and be written
// to a connection about to close: shown, perhaps, and answered as lost.
// The mark comes before settled takes the lock that begin takes too, so
// a message either is counted in flight (and waited for) or sees it.
func (l *LinkSession) beginClose() <-chan struct{} {
	l.closing.Store(true)
	return l.settled()
}
