package server_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
)

// wantControlReset checks that the relay closed s for resetting its control
// stream: 0x1 (WebSocket 4001), reason text "control stream reset", one
// more relay_protocol_errors_total than before, and tok bound nowhere.
func wantControlReset(t *testing.T, e *relaytest.Relay, s rawSession, before float64, tok string) {
	t.Helper()
	code, reason := s.closed()
	if code != wire.CloseProtocol || reason != "control stream reset" {
		t.Fatalf("relay closed with 0x%x %q, want 0x%x \"control stream reset\"", code, reason, wire.CloseProtocol)
	}
	if n := metric(t, e, "relay_protocol_errors_total"); n != before+1 {
		t.Fatalf("relay_protocol_errors_total went from %v to %v, want one more", before, n)
	}
	relaytest.WaitFor(t, func() bool { return e.Router().Lookup(router.KeyOf([]byte(tok))) == nil })
}

// TestControlStreamResetIsAProtocolError: the control stream is never
// reset (§7.4). A device that resets it, before LOGIN or during a live
// session, whatever the code, breaks the protocol on every transport.
func TestControlStreamResetIsAProtocolError(t *testing.T) {
	e := relaytest.Start(t, nil)
	lg := wire.Login{Version: wire.Version, Token: []byte(wire.NewToken())}.Append(nil)
	phases := []struct {
		name  string
		code  uint32
		begin func(t *testing.T, s rawSession, tok string)
	}{
		// A reset opens the stream on every transport, even with no byte
		// before it (on WebSocket, the mux frame 02 00 01).
		{"before any byte", wire.StreamCancelled, func(*testing.T, rawSession, string) {}},
		{"inside LOGIN", wire.StreamCancelled, func(_ *testing.T, s rawSession, _ string) { s.send(lg[:3]) }},
		{"after WELCOME", wire.StreamCancelled, rawLogin},
		{"after WELCOME, code 0x2", wire.StreamProtocol, rawLogin},
	}
	for _, tr := range rawTransports {
		for _, ph := range phases {
			t.Run(tr.name+"/"+ph.name, func(t *testing.T) {
				before := metric(t, e, "relay_protocol_errors_total")
				s, tok := tr.dial(t, e), wire.NewToken()
				ph.begin(t, s, tok)
				s.reset(ph.code)
				wantControlReset(t, e, s, before, tok)
			})
		}
	}
}

// TestControlStreamStopSendingIsAProtocolError: a STOP_SENDING alone on the
// control stream resets only the relay's side of it, which the relay finds
// when it next writes there: a protocol error all the same. Here that write
// is the WELCOME of a LOGIN sent after the STOP_SENDING, the ROTATED of a
// ROTATE (which the relay has done by then), or a drain's GOAWAY.
func TestControlStreamStopSendingIsAProtocolError(t *testing.T) {
	e := relaytest.Start(t, nil)
	for _, tr := range rawTransports[:2] { // QUIC's streams; a WebSocket RESET is both ways
		t.Run(tr.name+"/before LOGIN", func(t *testing.T) {
			before := metric(t, e, "relay_protocol_errors_total")
			s, tok := tr.dial(t, e).(*rawQUICSession), wire.NewToken()
			s.stopSending(wire.StreamCancelled)
			s.send(wire.Login{Version: wire.Version, Token: []byte(tok)}.Append(nil))
			wantControlReset(t, e, s, before, tok)
		})
		t.Run(tr.name+"/after WELCOME", func(t *testing.T) {
			before := metric(t, e, "relay_protocol_errors_total")
			s, tok, next := tr.dial(t, e).(*rawQUICSession), wire.NewToken(), wire.NewToken()
			rawLogin(t, s, tok)
			s.stopSending(wire.StreamCancelled)
			s.send(wire.Rotate{Token: []byte(next)}.Append(nil))
			wantControlReset(t, e, s, before, next)
			if n := e.Router().Len(); n != 0 {
				t.Fatalf("router holds %d sessions after the close", n)
			}
		})
		t.Run(tr.name+"/at GOAWAY", func(t *testing.T) {
			e := relaytest.Start(t, nil)
			s, tok := tr.dial(t, e).(*rawQUICSession), wire.NewToken()
			rawLogin(t, s, tok)
			s.stopSending(wire.StreamCancelled)
			// A webhook answered after the STOP_SENDING: once its caller
			// has the reply, the relay has read what came before it.
			done := s.answer(wire.Reply{Status: 200, Body: []byte(`{}`)}.Append(nil))
			if status, body := e.Post(t, "notify", tok, `{}`); status != 200 {
				t.Fatalf("webhook: %d %s", status, body)
			}
			if err := <-done; err != nil {
				t.Fatalf("device side: %v", err)
			}
			// A device that ignores its GOAWAY holds the drain open to its
			// timeout: the relay's close of s has that long to arrive
			// before the end of the drain closes the transport under it
			// (on a loaded machine it sometimes did not, and s saw the
			// transport's close instead).
			rawLogin(t, tr.dial(t, e).(*rawQUICSession), wire.NewToken())
			stopped := make(chan struct{})
			go func() { e.Stop(); close(stopped) }()
			code, reason := s.closed()
			<-stopped
			if code != wire.CloseProtocol || reason != "control stream reset" {
				t.Fatalf("relay closed with 0x%x %q, want 0x%x \"control stream reset\"", code, reason, wire.CloseProtocol)
			}
		})
	}
}

// nonTextTokens are 43-byte tokens, the length of a real one, each with a
// byte that is not text (§3) or, for the space, not base64url (§5).
var nonTextTokens = map[string][]byte{
	"0x00": append([]byte(wire.NewToken()[:42]), 0x00),
	"0x7f": append([]byte(wire.NewToken()[:42]), 0x7f),
	"0xff": append([]byte{0xff}, wire.NewToken()[:42]...),
	"0x0a": append([]byte(wire.NewToken()[:21]), append([]byte{'\n'}, wire.NewToken()[:21]...)...),
	"' '":  append([]byte(wire.NewToken()[:42]), ' '),
}

// TestNonTextTokenIsBadToken: the token is not a text field. A LOGIN or
// ROTATE whose token holds a byte outside base64url, a non-text one
// included, decodes, and is refused bad_token (§5), not closed as a
// protocol error: a LOGIN with REFUSE and close 0x2 "bad_token", a ROTATE
// with REFUSE alone, the session kept on its token.
func TestNonTextTokenIsBadToken(t *testing.T) {
	// Rotations unlimited: the rotation budget is another test's.
	e := relaytest.Start(t, func(c *server.Config) { c.Session.Rotations = limit.Rate{} })
	for _, tr := range rawTransports {
		t.Run(tr.name+"/LOGIN", func(t *testing.T) {
			t.Parallel() // the last refusal waits out the relay's refuse linger
			before := metric(t, e, "relay_protocol_errors_total")
			last := len(nonTextTokens)
			for name, tok := range nonTextTokens {
				last--
				s := tr.dial(t, e)
				s.send(wire.Login{Version: wire.Version, Token: tok}.Append(nil))
				if r := rawRefusal(t, s); r != wire.ReasonToken {
					t.Fatalf("LOGIN with %s: REFUSE %s, want %s", name, r, wire.ReasonToken)
				}
				if last > 0 {
					s.hangUp()
					continue
				}
				if code, reason := s.closed(); code != wire.CloseRefused || reason != "bad_token" {
					t.Fatalf("relay closed with 0x%x %q, want 0x%x \"bad_token\"", code, reason, wire.CloseRefused)
				}
			}
			if n := metric(t, e, "relay_protocol_errors_total"); n != before {
				t.Fatalf("relay_protocol_errors_total went from %v to %v: counted as a protocol error", before, n)
			}
		})
		t.Run(tr.name+"/ROTATE", func(t *testing.T) {
			before := metric(t, e, "relay_protocol_errors_total")
			s, cur := tr.dial(t, e), wire.NewToken()
			rawLogin(t, s, cur)
			for name, tok := range nonTextTokens {
				s.send(wire.Rotate{Token: tok}.Append(nil))
				if r := rawRefusal(t, s); r != wire.ReasonToken {
					t.Fatalf("ROTATE to a token with %s: REFUSE %s, want %s", name, r, wire.ReasonToken)
				}
			}
			// The session is up, on its token: a ROTATE to it succeeds.
			s.send(wire.Rotate{Token: []byte(cur)}.Append(nil))
			if typ, p, err := s.readFrame(); err != nil || typ != wire.FrameRotated {
				t.Fatalf("ROTATE after the refusals: %s %q (%v), want ROTATED", typ, p, err)
			}
			if e.Router().Lookup(router.KeyOf([]byte(cur))) == nil {
				t.Fatal("the refused rotations unbound the session's token")
			}
			if n := metric(t, e, "relay_protocol_errors_total"); n != before {
				t.Fatalf("relay_protocol_errors_total went from %v to %v: counted as a protocol error", before, n)
			}
		})
	}
}

// TestRefusedRotationsCount: every ROTATE the relay decodes takes one from
// the session's rotation budget (§6.4), whether it is done or refused
// bad_token or token_in_use, and rotating to the token held counts too.
// Past the budget the relay answers rate_limited before it looks at the
// token, and the session keeps its token.
func TestRefusedRotationsCount(t *testing.T) {
	// Three at once, then one an hour: nothing refills during the test.
	e := relaytest.Start(t, func(c *server.Config) { c.Session.Rotations = limit.Rate{PerSecond: 1.0 / 3600, Burst: 3} })
	for _, tr := range rawTransports {
		t.Run(tr.name, func(t *testing.T) {
			taken := wire.NewToken()
			e.Dial(t, taken, echo("other"))
			s, cur := tr.dial(t, e), wire.NewToken()
			rawLogin(t, s, cur)
			s.send(wire.Rotate{Token: []byte("short")}.Append(nil))
			if r := rawRefusal(t, s); r != wire.ReasonToken {
				t.Fatalf("ROTATE to a malformed token: REFUSE %s, want %s", r, wire.ReasonToken)
			}
			s.send(wire.Rotate{Token: []byte(taken)}.Append(nil))
			if r := rawRefusal(t, s); r != wire.ReasonInUse {
				t.Fatalf("ROTATE to a token in use: REFUSE %s, want %s", r, wire.ReasonInUse)
			}
			s.send(wire.Rotate{Token: []byte(cur)}.Append(nil))
			if typ, p, err := s.readFrame(); err != nil || typ != wire.FrameRotated {
				t.Fatalf("ROTATE to the token held: %s %q (%v), want ROTATED", typ, p, err)
			}
			// The budget of three is spent: a valid, free token is refused.
			next := wire.NewToken()
			s.send(wire.Rotate{Token: []byte(next)}.Append(nil))
			if r := rawRefusal(t, s); r != wire.ReasonLimited {
				t.Fatalf("fourth ROTATE: REFUSE %s, want %s", r, wire.ReasonLimited)
			}
			if e.Router().Lookup(router.KeyOf([]byte(cur))) == nil || e.Router().Lookup(router.KeyOf([]byte(next))) != nil {
				t.Fatal("the refused rotation moved the session off its token")
			}
		})
	}
	for reason, want := range map[string]float64{"bad_token": 3, "token_in_use": 3, "rate_limited": 3} {
		if n := metric(t, e, `relay_rotation_refusals_total{reason="`+reason+`"}`); n != want {
			t.Errorf("relay_rotation_refusals_total{reason=%q} = %v, want %v", reason, n, want)
		}
	}
}

// TestReferenceDeviceKeepsItsControlStream: the reference device never
// resets its control stream (§7.4) nor otherwise breaks the protocol on
// it, on any transport, through a session's life: rotations done and
// refused bad_token (after which the session goes on), a message, then a
// graceful leave or a plain close.
func TestReferenceDeviceKeepsItsControlStream(t *testing.T) {
	e := relaytest.Start(t, nil)
	before := metric(t, e, "relay_protocol_errors_total")
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c, served := e.DialWith(t, wire.NewToken(), echo(tr.name), tr.opt)
			next := wire.NewToken()
			if err := c.Rotate(context.Background(), next); err != nil {
				t.Fatal(err)
			}
			var re *device.RefusedError
			if err := c.Rotate(context.Background(), "short"); !errors.As(err, &re) || re.Reason != wire.ReasonToken {
				t.Fatalf("ROTATE to a malformed token: %v, want REFUSE bad_token", err)
			}
			if s, body := e.Post(t, "notify", next, `{}`); s != 200 {
				t.Fatalf("webhook after the refused rotation: %d %s", s, body)
			}
			c.Leave()
			if err := <-served; !errors.Is(err, device.ErrClosed) {
				t.Fatalf("Serve after Leave: %v, want ErrClosed", err)
			}
			other, _ := e.DialWith(t, wire.NewToken(), echo(tr.name), tr.opt)
			other.Close()
		})
	}
	relaytest.WaitFor(t, func() bool { return e.Router().Len() == 0 })
	if n := metric(t, e, "relay_protocol_errors_total"); n != before {
		t.Fatalf("relay_protocol_errors_total went from %v to %v", before, n)
	}
}
