package device

import (
	"fmt"
	"testing"
	"time"
)

// bound is min(max, base<<attempt) without overflow.
func bound(base, ceil time.Duration, attempt int) time.Duration {
	if attempt >= 63 || base > ceil>>attempt {
		return ceil
	}
	return min(ceil, base<<attempt)
}

// waitOrPanic calls b.wait and turns a panic into an error, so that one bad
// case fails its test instead of the whole binary.
func waitOrPanic(b Backoff, attempt int) (d time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return b.wait(attempt), nil
}

// checkWaits samples b.wait(attempt) and checks every draw is in
// (0, bound] and that the draws spread over the range (full jitter).
func checkWaits(t *testing.T, b Backoff, base, ceil time.Duration, attempt int) {
	t.Helper()
	const samples = 200
	hi := bound(base, ceil, attempt)
	var largest time.Duration
	for range samples {
		d, err := waitOrPanic(b, attempt)
		if err != nil {
			t.Fatalf("%+v.wait(%d): %v", b, attempt, err)
		}
		if d <= 0 || d > hi {
			t.Fatalf("%+v.wait(%d) = %v; want in (0, %v]", b, attempt, d, hi)
		}
		largest = max(largest, d)
	}
	// 200 uniform draws all in the lower half: probability 2^-200.
	if hi > 1 && largest <= hi/2 {
		t.Fatalf("%+v.wait(%d): largest of %d draws %v; want jitter over (0, %v]", b, attempt, samples, largest, hi)
	}
}

func TestBackoffWaitBounds(t *testing.T) {
	for _, b := range []Backoff{
		{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		{Base: time.Millisecond, Max: time.Second},
		{Base: 500 * time.Millisecond, Max: time.Minute},
		{Base: time.Second, Max: 500 * time.Millisecond}, // Base above Max
		{Base: 1, Max: 1},
	} {
		for _, attempt := range []int{0, 1, 2, 3, 5, 10, 29, 30, 31, 62, 63, 64, 100, 1 << 20} {
			checkWaits(t, b, b.Base, b.Max, attempt)
		}
	}
}

func TestBackoffWaitNeverExceedsMax(t *testing.T) {
	b := Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	for range 1000 {
		if d := b.wait(100); d <= 0 || d > b.Max {
			t.Fatalf("wait(100) = %v; want in (0, %v]", d, b.Max)
		}
	}
}

func TestBackoffWaitDefaults(t *testing.T) {
	for _, b := range []Backoff{{}, {Base: -time.Second, Max: -time.Second}} {
		checkWaits(t, b, DefaultBackoffBase, DefaultBackoffMax, 0)
		checkWaits(t, b, DefaultBackoffBase, DefaultBackoffMax, 3)
		checkWaits(t, b, DefaultBackoffBase, DefaultBackoffMax, 100)
	}
	// Each zero field takes its own default.
	checkWaits(t, Backoff{Max: 2 * time.Second}, DefaultBackoffBase, 2*time.Second, 1)
	checkWaits(t, Backoff{Base: time.Second}, time.Second, DefaultBackoffMax, 4)
}

// A relay outage long enough for the attempt counter to reach 29 must not
// crash the device. Base<<attempt overflows int64 there once Base is above
// ~17 s (e.g. Base 20 s, Max 10 min, an outage of a few hours), and the
// negative "wait" reaches rand.N, which panics.
func TestBackoffWaitLargeBaseDoesNotOverflow(t *testing.T) {
	for _, b := range []Backoff{
		{Base: 20 * time.Second, Max: 10 * time.Minute},
		{Base: time.Minute, Max: time.Hour},
		{Base: time.Hour, Max: 24 * time.Hour},
	} {
		for attempt := range 101 {
			d, err := waitOrPanic(b, attempt)
			if err != nil || d <= 0 || d > b.Max {
				t.Errorf("%+v.wait(%d) = %v, %v; want in (0, %v]", b, attempt, d, err, b.Max)
				break
			}
		}
	}
}

func TestAfterSession(t *testing.T) {
	b := Backoff{Base: time.Second, Max: time.Minute, StableAfter: time.Minute}
	goAway := &GoAwayError{}
	goAway.ReconnectAfter, goAway.Redirect = 3*time.Second, "[2001:db8::1]:8443"
	for _, tc := range []struct {
		name        string
		err         error
		lasted      time.Duration
		attempt     int
		maxWait     time.Duration // waits are jittered in (0, maxWait]
		next        int
		redirect    string
		exactWait   bool
		wantExactly time.Duration
	}{
		{name: "go-away starts the backoff over", err: goAway, lasted: time.Second, attempt: 7,
			exactWait: true, wantExactly: 3 * time.Second, next: 0, redirect: "[2001:db8::1]:8443"},
		{name: "short session counts as a failure", err: ErrReplaced, lasted: time.Second, attempt: 2,
			maxWait: 4 * time.Second, next: 3},
		{name: "stable session starts over", err: ErrReplaced, lasted: time.Minute, attempt: 5,
			maxWait: time.Second, next: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 100 {
				wait, next, redirect := b.afterSession(tc.err, tc.lasted, tc.attempt)
				if next != tc.next || redirect != tc.redirect {
					t.Fatalf("next attempt %d, redirect %q; want %d, %q", next, redirect, tc.next, tc.redirect)
				}
				if tc.exactWait && wait != tc.wantExactly || !tc.exactWait && (wait <= 0 || wait > tc.maxWait) {
					t.Fatalf("wait %v", wait)
				}
			}
		})
	}
}
