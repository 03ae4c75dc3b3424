package session_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/wire"
)

// TestDrainWaitsForDevicesToLeave: every device gets a GOAWAY with a delay
// within the spread; Drain returns the instant the last one has left, long
// before its deadline.
func TestDrainWaitsForDevicesToLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const spread = 4 * time.Second
		e := start(t, nil)
		served := make(chan error, 3)
		for range 3 {
			c, err := e.dial(wire.NewToken(), device.Options{})
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				served <- c.Serve(context.Background(), device.HandlerFunc(func(context.Context, wire.Message) (int, []byte) { return 200, nil }))
			}()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		began := time.Now()
		e.srv.Drain(ctx, spread)
		// GOAWAY reaches each device after one latency; each hangs up at
		// once (no message open); the relay reads the FIN one latency later.
		if d := time.Since(began); d != 2*latency {
			t.Fatalf("Drain returned after %v, want %v: as soon as every device left", d, 2*latency)
		}
		for range 3 {
			var ga *device.GoAwayError
			if err := <-served; !errors.As(err, &ga) || ga.Reason != wire.ReasonDraining {
				t.Fatalf("Serve: %v, want a go-away", err)
			} else if ga.ReconnectAfter < 0 || ga.ReconnectAfter >= spread {
				t.Fatalf("reconnect after %v, want within [0, %v)", ga.ReconnectAfter, spread)
			}
		}
		if n := e.srv.Len(); n != 0 {
			t.Fatalf("%d sessions left", n)
		}
	})
}

// TestDrainTimeoutClosesTheRest: a device that takes its GOAWAY but stays is
// closed with 0x4 exactly when the drain's context ends, and Drain returns
// then; a device that dials meanwhile is refused with draining.
func TestDrainTimeoutClosesTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 15 * time.Second
		e := start(t, nil)
		tok := wire.NewToken()
		c, ctrl := e.login(tok)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		began := time.Now()
		drained := make(chan struct{})
		go func() {
			e.srv.Drain(ctx, 0)
			close(drained)
		}()
		typ, p := readFrame(t, ctrl)
		if g, err := wire.ParseGoAway(p); typ != wire.FrameGoAway || err != nil || g.ReconnectAfter != 0 {
			t.Fatalf("got %s %+v %v, want GOAWAY with no delay", typ, g, err)
		}

		// Dialling now gets a refusal at once, not a wait.
		_, err := e.dial(wire.NewToken(), device.Options{})
		var re *device.RefusedError
		if !errors.As(err, &re) || re.Reason != wire.ReasonDraining {
			t.Fatalf("dial while draining: %v, want REFUSE draining", err)
		}

		if code := closedWith(t, c); code != wire.CloseGoingAway {
			t.Fatalf("closed with 0x%x, want 0x%x", code, wire.CloseGoingAway)
		}
		if d := time.Since(began); d != timeout+latency {
			t.Fatalf("closed after %v, want the drain timeout %v plus a latency", d, timeout)
		}
		<-drained
		if e.router.Lookup(router.KeyOf([]byte(tok))) != nil {
			t.Fatal("the closed device is still routed")
		}
	})
}

// TestDrainRedirect: GOAWAY names Config.Redirect.
func TestDrainRedirect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, func(c *session.Config) { c.Redirect = "[2001:db8::7]:8443" })
		_, ctrl := e.login(wire.NewToken())
		go e.srv.Drain(context.Background(), time.Second)
		_, p := readFrame(t, ctrl)
		if g, err := wire.ParseGoAway(p); err != nil || g.Redirect != "[2001:db8::7]:8443" {
			t.Fatalf("GOAWAY %+v %v, want the redirect", g, err)
		}
		ctrl.Close()
	})
}
