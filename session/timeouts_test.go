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

// TestLoginTimeout: a connection without a complete LOGIN is closed with
// 0x5 exactly LoginTimeout after the relay accepted it, whatever part of a
// LOGIN it sent.
func TestLoginTimeout(t *testing.T) {
	const timeout = 7 * time.Second
	lg := wire.Login{Version: wire.Version, Token: []byte(wire.NewToken())}.Append(nil)
	for _, tc := range []struct {
		name string
		sent []byte // on the control stream; nil opens none
	}{
		{"no control stream", nil},
		{"half a header", lg[:3]},
		{"header without payload", lg[:wire.HeaderLen]},
		{"payload cut short", lg[:len(lg)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := start(t, func(c *session.Config) { c.LoginTimeout = timeout })
				c := e.rawDial()
				dialed := time.Now() // the relay accepts one latency later
				if tc.sent != nil {
					s, _ := c.OpenStream()
					s.Write(tc.sent)
				}
				if code := closedWith(t, c); code != wire.CloseLoginTimeout {
					t.Fatalf("closed with 0x%x, want 0x%x", code, wire.CloseLoginTimeout)
				}
				if got, want := time.Since(dialed), latency+timeout+latency; got != want {
					t.Fatalf("closed %v after the dial, want %v: the login timeout plus a latency each way", got, want)
				}
				if n := counter(e, "relay_login_timeouts_total"); n != 1 {
					t.Fatalf("relay_login_timeouts_total = %d", n)
				}
			})
		})
	}
}

// TestAckTimeout: a device that does not answer fails the delivery with
// router.ErrTimeout exactly at the caller's deadline, and its stream is
// reset both ways with 0x1.
func TestAckTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ack = 5 * time.Second
		e := start(t, nil)
		tok := wire.NewToken()
		c, _ := e.login(tok)
		got := make(chan error, 1)
		began := time.Now()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), ack)
			defer cancel()
			_, err := e.router.Deliver(ctx, router.KeyOf([]byte(tok)), router.Message{Mode: "notify", Body: []byte(`{}`)})
			got <- err
		}()
		s := acceptMessage(t, c)
		if err := <-got; !errors.Is(err, router.ErrTimeout) {
			t.Fatalf("Deliver: %v, want ErrTimeout", err)
		}
		if d := time.Since(began); d != ack {
			t.Fatalf("Deliver returned after %v, want exactly %v", d, ack)
		}
		wantReset(t, s)
		if d := time.Since(began); d != ack+latency {
			t.Fatalf("the device saw the reset after %v, want %v", d, ack+latency)
		}
	})
}

// TestCancelResetsTheDevice: when the caller goes away (its context is
// cancelled), the delivery ends at that instant with the cause, the device's
// stream is reset with 0x1, and the in-flight slot is free again.
func TestCancelResetsTheDevice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, func(c *session.Config) { c.MaxInflight = 1 })
		tok := wire.NewToken()
		c, _ := e.login(tok)
		key := router.KeyOf([]byte(tok))
		gone := errors.New("caller hung up")
		ctx, cancel := context.WithCancelCause(context.Background())
		got := make(chan error, 1)
		go func() {
			_, err := e.router.Deliver(ctx, key, router.Message{Mode: "notify", Body: []byte(`{}`)})
			got <- err
		}()
		s := acceptMessage(t, c)
		time.Sleep(time.Second) // the device works; then the caller leaves
		cancelled := time.Now()
		cancel(gone)
		if err := <-got; !errors.Is(err, gone) || errors.Is(err, router.ErrTimeout) {
			t.Fatalf("Deliver: %v, want the cancel's cause", err)
		}
		if d := time.Since(cancelled); d != 0 {
			t.Fatalf("Deliver returned %v after the cancel, want at once", d)
		}
		wantReset(t, s)
		if d := time.Since(cancelled); d != latency {
			t.Fatalf("the device saw the reset %v after the cancel, want %v", d, latency)
		}

		// The slot is free: the next message is delivered, not refused.
		done := make(chan error, 1)
		go func() {
			s := acceptMessage(t, c)
			_, err := s.Write(wire.Reply{Status: 200, Body: []byte(`{}`)}.Append(nil))
			s.Close()
			done <- err
		}()
		rep, err := e.router.Deliver(context.Background(), key, router.Message{Mode: "notify", Body: []byte(`{}`)})
		if err != nil || rep.Status != 200 {
			t.Fatalf("next delivery: %+v %v", rep, err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestRefuseLinger: a refused device may read why for RefuseLinger; then
// the relay closes with 0x2 and the reason's name.
func TestRefuseLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const linger = 3 * time.Second
		e := start(t, func(c *session.Config) { c.RefuseLinger = linger })
		c := e.rawDial()
		ctrl, _ := c.OpenStream()
		ctrl.Write(wire.Login{Version: wire.Version, Token: []byte("not-a-token")}.Append(nil))
		typ, p := readFrame(t, ctrl)
		refused := time.Now()
		if r, err := wire.ParseRefuse(p); typ != wire.FrameRefuse || err != nil || r.Reason != wire.ReasonToken {
			t.Fatalf("got %s %+v %v, want REFUSE bad_token", typ, r, err)
		}
		if code := closedWith(t, c); code != wire.CloseRefused {
			t.Fatalf("closed with 0x%x, want 0x%x", code, wire.CloseRefused)
		}
		if d := time.Since(refused); d != linger {
			t.Fatalf("closed %v after REFUSE, want the linger, %v", d, linger)
		}
	})
}

// TestRotationLimit: a session may rotate Rotations.Burst times at once,
// then at Rotations.PerSecond; a rotation over the limit is refused with
// rate_limited and the session keeps its token.
func TestRotationLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, func(c *session.Config) {
			c.Rotations.PerSecond, c.Rotations.Burst = 0.1, 2 // 2 at once, then one every 10 s
		})
		tok := wire.NewToken()
		conn, err := e.dial(tok, device.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for range 2 {
			next := wire.NewToken()
			if err := conn.Rotate(context.Background(), next); err != nil {
				t.Fatalf("rotation within the burst: %v", err)
			}
			tok = next
		}
		var re *device.RefusedError
		if err := conn.Rotate(context.Background(), wire.NewToken()); !errors.As(err, &re) || re.Reason != wire.ReasonLimited {
			t.Fatalf("rotation over the burst: %v, want REFUSE rate_limited", err)
		}
		if e.router.Lookup(router.KeyOf([]byte(tok))) == nil {
			t.Fatal("the refused rotation unbound the current token")
		}
		if n := counter(e, `relay_rotation_refusals_total{reason="rate_limited"}`); n != 1 {
			t.Fatalf("relay_rotation_refusals_total{reason=rate_limited} = %d, want 1", n)
		}
		time.Sleep(10 * time.Second)
		if err := conn.Rotate(context.Background(), wire.NewToken()); err != nil {
			t.Fatalf("rotation after the refill: %v", err)
		}
	})
}
