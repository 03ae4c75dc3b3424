package router_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pixelrelay/relay/router"
)

// TestOutcomeCodes: every outcome's code parses back to it, wrapped or
// not, and names one outcome; the code an older node sends for
// ErrUnavailable still parses; an unknown code is none.
func TestOutcomeCodes(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range router.Outcomes() {
		if o.Code() == "" || seen[o.Code()] {
			t.Errorf("outcome %v: code %q empty or taken", o, o.Code())
		}
		seen[o.Code()] = true
		if got := router.OutcomeOf(o.Code()); got != error(o) {
			t.Errorf("OutcomeOf(%q) = %v, want %v", o.Code(), got, o)
		}
		if got := router.CodeOf(fmt.Errorf("detail: %w", o)); got != o.Code() {
			t.Errorf("CodeOf(wrapped %v) = %q", o, got)
		}
	}
	if got := router.OutcomeOf("unavailable"); got != error(router.ErrUnavailable) {
		t.Errorf(`OutcomeOf("unavailable") = %v, want ErrUnavailable (a node not yet upgraded)`, got)
	}
	if got := router.OutcomeOf("nonsense"); got != nil {
		t.Errorf("OutcomeOf of an unknown code = %v", got)
	}
	if got := router.CodeOf(errors.New("other")); got != "" {
		t.Errorf("CodeOf of another error = %q", got)
	}
}

// TestCanceled: a canceled context is ErrCanceled, wrapping the cause; a
// passed deadline or a live context is not a cancel.
func TestCanceled(t *testing.T) {
	if err := router.Canceled(context.Background()); err != nil {
		t.Errorf("a live context: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	if err := router.Canceled(ctx); err != nil {
		t.Errorf("a passed deadline: %v, want nil (a timeout, not a cancel)", err)
	}
	gone := errors.New("caller hung up")
	ctx, cancelCause := context.WithCancelCause(context.Background())
	cancelCause(gone)
	if err := router.Canceled(ctx); !errors.Is(err, router.ErrCanceled) || !errors.Is(err, gone) {
		t.Errorf("a canceled context: %v, want ErrCanceled wrapping its cause", err)
	}
}
