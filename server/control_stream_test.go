package server_test

import (
	"testing"

	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/router"
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
			e.Stop()
			if code, reason := s.closed(); code != wire.CloseProtocol || reason != "control stream reset" {
				t.Fatalf("relay closed with 0x%x %q, want 0x%x \"control stream reset\"", code, reason, wire.CloseProtocol)
			}
		})
	}
}
