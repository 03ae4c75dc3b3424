package loadtest

// This file is the swarm's event log: what happened to each device's
// sessions and when (a churn hang-up, a rotation, a GOAWAY, a move), so that
// a webhook not answered 2xx can be explained by what its device was doing
// meanwhile rather than guessed at.

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// eventKind is what happened to a device.
type eventKind uint8

const (
	evUp       eventKind = iota // a session logged in (first or after a reconnect)
	evMoved                     // a session logged in on another node after GOAWAY
	evDown                      // a session ended
	evGoAway                    // the node sent GOAWAY
	evHangup                    // churn hung the session up
	evRotating                  // churn started a rotation
	evRotated                   // the relay confirmed the rotation: the old token is gone
)

var eventNames = [...]string{"logged in", "moved in", "session ended", "GOAWAY", "hung up by churn", "rotating token", "token rotated"}

// churny reports whether k is churn's doing.
func (k eventKind) churny() bool { return k == evHangup || k == evRotating || k == evRotated }

// event is one thing that happened to a device's session on a node.
type event struct {
	at   time.Time
	dev  int32
	node int16
	kind eventKind
}

// maxEvents bounds the log: beyond it events are dropped (and counted), so
// that a long soak cannot grow without end. 4M events are ~130 MB.
const maxEvents = 1 << 22

// eventLog is the swarm's events in the order they were logged. Safe for
// concurrent use.
type eventLog struct {
	mu      sync.Mutex // guards the fields below
	evs     []event
	dropped uint64
}

func (l *eventLog) add(dev, node int, k eventKind) {
	if l == nil {
		return
	}
	e := event{at: time.Now(), dev: int32(dev), node: int16(node), kind: k}
	l.mu.Lock()
	if len(l.evs) < maxEvents {
		l.evs = append(l.evs, e)
	} else {
		l.dropped++
	}
	l.mu.Unlock()
}

// byDevice returns each device's events in time order.
func (l *eventLog) byDevice() map[int32][]event {
	m := map[int32][]event{}
	if l == nil {
		return m
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		m[e.dev] = append(m[e.dev], e)
	}
	for _, evs := range m {
		slices.SortStableFunc(evs, func(a, b event) int { return a.at.Compare(b.at) })
	}
	return m
}

// explainLookback is how far before a webhook was sent its device's events
// are listed.
const explainLookback = 2 * time.Second

// explain lists dev's events from explainLookback before sent to just
// after answered, relative to sent, and reports whether churn explains a
// webhook not answered 2xx: its device had been hung up by churn and not
// logged in again when it was sent, or was rotating its token, or churn
// hung it up or rotated it before the answer.
func explain(evs []event, sent, answered time.Time) (lines []string, churn bool) {
	from, to := sent.Add(-explainLookback), answered.Add(100*time.Millisecond)
	var hungUp, rotating bool // the device's state when the webhook was sent
	for _, e := range evs {
		switch {
		case !e.at.After(sent):
			switch e.kind {
			case evHangup:
				hungUp = true
			case evUp, evMoved:
				hungUp = false
			case evRotating:
				rotating = true
			case evRotated:
				rotating = false
			}
		case !e.at.After(answered) && e.kind.churny():
			churn = true
		}
		if !e.at.Before(from) && !e.at.After(to) {
			lines = append(lines, fmt.Sprintf("%+.3f s %s (node %d)", e.at.Sub(sent).Seconds(), eventNames[e.kind], e.node))
		}
	}
	return lines, churn || hungUp || rotating
}
