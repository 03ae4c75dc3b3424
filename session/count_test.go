package session_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/wire"
)

// TestOneCount: the cap, the relay_devices_connected gauge and Len come
// from one count of live sessions and agree at every step: a login at the
// cap is refused full, a takeover at the cap is let in and its predecessor
// leaves, and a device that leaves frees its slot for the next.
func TestOneCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, func(c *session.Config) { c.MaxDevices = 2 })
		want := func(step string, n int) {
			t.Helper()
			// Whatever the last step set moving reaches the relay within
			// a round trip of virtual time.
			time.Sleep(2 * latency)
			synctest.Wait()
			if got := e.srv.Len(); got != n {
				t.Fatalf("%s: Len = %d, want %d", step, got, n)
			}
			if got := value(e, `relay_devices_connected{transport="quic"}`); got != float64(n) {
				t.Fatalf("%s: relay_devices_connected = %v, want %d", step, got, n)
			}
			if got := e.router.Len(); got != n {
				t.Fatalf("%s: the router holds %d tokens, want %d", step, got, n)
			}
		}
		a, b := wire.NewToken(), wire.NewToken()
		ca, _ := e.login(a)
		cb, _ := e.login(b)
		want("two logins", 2)

		_, err := e.dial(wire.NewToken(), device.Options{})
		var re *device.RefusedError
		if !errors.As(err, &re) || re.Reason != wire.ReasonFull {
			t.Fatalf("a third login: %v, want REFUSE full", err)
		}
		want("a login refused full", 2)

		e.login(b) // a takeover at the cap
		if code := closedWith(t, cb); code != wire.CloseReplaced {
			t.Fatalf("the replaced session closed with 0x%x", code)
		}
		want("a takeover at the cap", 2)

		ca.CloseWithError(0, "")
		want("a device left", 1)
		if e.router.Lookup(router.KeyOf([]byte(a))) != nil {
			t.Fatal("the device that left is still routed")
		}
		e.login(wire.NewToken())
		want("a login into the freed slot", 2)
	})
}
