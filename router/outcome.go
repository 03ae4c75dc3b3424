package router

import (
	"context"
	"errors"
	"fmt"
)

// Outcome is how a delivery failed: one of the Err values below, which
// Devices, Dests and Meshes return (wrapped or not). Its Code is stable and
// the same everywhere the outcome travels: the code of the webhook's HTTP
// error body, the code a node sends another over the cluster's bus, and
// the outcome label of the relay's delivery metrics.
type Outcome struct {
	code, text string
}

func (o *Outcome) Error() string { return "router: " + o.text }

// Code is o's stable, machine-readable name.
func (o *Outcome) Code() string { return o.code }

// outcomes lists every Outcome, in the order they are declared; static
// after init.
var outcomes []*Outcome

func newOutcome(code, text string) *Outcome {
	o := &Outcome{code, text}
	outcomes = append(outcomes, o)
	return o
}

// The delivery outcomes.
var (
	ErrNoDevice = newOutcome("no_device", "no device for token")
	ErrBusy     = newOutcome("busy", "device has too many messages in flight")
	ErrTimeout  = newOutcome("timeout", "device did not answer in time")
	ErrGone     = newOutcome("device_gone", "device disconnected before answering")
	ErrBadReply = newOutcome("bad_reply", "device sent an invalid reply")
	// ErrOutdated: the device's protocol version cannot carry the message
	// (a query to a version 1 session); it was not sent.
	ErrOutdated = newOutcome("device_outdated", "device's protocol version cannot carry the message")
	// ErrUnavailable: the device may be connected to another node, which
	// cannot be reached now (the cluster's message bus is down).
	ErrUnavailable = newOutcome("cluster_unavailable", "the other relay nodes cannot be reached")
	// ErrCanceled: the caller went away (its context was canceled)
	// before the device answered; the device's stream was reset. See
	// Canceled.
	ErrCanceled = newOutcome("caller_gone", "the caller went away before the device answered")
)

// Outcomes returns every delivery outcome, in a fixed order.
func Outcomes() []*Outcome { return append([]*Outcome(nil), outcomes...) }

// OutcomeOf returns the outcome whose Code is code, or nil if there is
// none.
func OutcomeOf(code string) error {
	for _, o := range outcomes {
		if o.code == code {
			return o
		}
	}
	// Nodes before one code per outcome named ErrUnavailable so on the
	// cluster's bus: during a rolling restart an old node may still say it.
	if code == "unavailable" {
		return ErrUnavailable
	}
	return nil
}

// CodeOf returns the Code of the outcome err is or wraps, "" if none.
func CodeOf(err error) string {
	var o *Outcome
	if errors.As(err, &o) {
		return o.code
	}
	return ""
}

// Canceled is the one test of "did the caller go away": ErrCanceled,
// wrapping ctx's cause, if ctx was canceled; nil if it was not, or if its
// deadline passed instead (that is ErrTimeout, for the one that waited).
func Canceled(ctx context.Context) error {
	if !errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrCanceled, context.Cause(ctx))
}
