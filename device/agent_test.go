package device_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/wire"
)

// prompt bounds how long Run may take to notice a cancelled context or a
// permanent refusal: far below the Agent's LoginTimeout (agentLoginWait)
// and the default one, so that a Run that waits those out fails.
const prompt = 2 * time.Second

func wantReturn(t *testing.T, result <-chan error, within time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-result:
		return err
	case <-time.After(within):
		t.Fatalf("Agent.Run did not return within %v of %s", within, what)
		return nil
	}
}

func TestAgentDeliversWebhooks(t *testing.T) {
	r := startRelay(t)
	a := newAgent(t, r.TLS, r.Addr)
	a.run(t)
	c := recv(t, a.sessions, "the first session")
	if w := c.Welcome(); w.Version != wire.Version || w.MaxBody == 0 {
		t.Fatalf("welcome %+v", w)
	}
	tok := a.token(t)

	// OnSession runs once the relay has registered the session: no waiting.
	if body := wantStatus(t, r, tok, 200); string(body) != `{"ok":true}` {
		t.Fatalf("webhook reply %s; want the handler's", body)
	}
	if m := recv(t, a.got, "the message"); m != (message{"notify", `{"text":"x"}`}) {
		t.Fatalf("handler got %+v", m)
	}
	// The token the Agent logged in with is the one it created and stored.
	if err := wire.CheckToken([]byte(tok)); err != nil {
		t.Fatalf("stored token: %v", err)
	}
	select {
	case c := <-a.sessions:
		t.Fatalf("second session %v without a disconnect", c)
	default:
	}
}

func TestAgentReconnectsToRestartedRelay(t *testing.T) {
	r1 := startRelay(t)
	a := newAgent(t, r1.TLS, r1.Addr)
	a.run(t)
	first := recv(t, a.sessions, "the first session")
	tok := a.token(t)
	wantStatus(t, r1, tok, 200)

	// The relay drains: the Agent gets a go-away within reconnectSpread,
	// hangs up, and Run (of the relay) returns once it has.
	r1.Stop()
	recv(t, first.Context().Done(), "the old session to end")

	r2 := r1.Restart(t)
	if r2.Addr != r1.Addr {
		t.Fatalf("restarted relay on %s; want %s", r2.Addr, r1.Addr)
	}
	second := recv(t, a.sessions, "a session with the restarted relay")
	if second == first {
		t.Fatal("OnSession reported the old connection again")
	}
	if got := a.token(t); got != tok {
		t.Fatalf("token changed across the reconnect: %q -> %q", tok, got)
	}
	if body := wantStatus(t, r2, tok, 200); string(body) != `{"ok":true}` {
		t.Fatalf("webhook after reconnect: %s", body)
	}

	// And once more: the backoff state after a go-away does not stop a
	// second reconnect.
	r3 := r2.Restart(t)
	recv(t, a.sessions, "a session with the relay restarted twice")
	wantStatus(t, r3, tok, 200)
}

func TestAgentRotateWhileConnected(t *testing.T) {
	r := startRelay(t)
	a := newAgent(t, r.TLS, r.Addr)
	a.run(t)
	c := recv(t, a.sessions, "the first session")
	old := a.token(t)
	wantStatus(t, r, old, 200)

	next, err := a.agent.Rotate(context.Background())
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if next == old || wire.CheckToken([]byte(next)) != nil {
		t.Fatalf("Rotate returned %q (old %q); want a fresh valid token", next, old)
	}
	if got := a.token(t); got != next {
		t.Fatalf("store holds %q after Rotate; want %q", got, next)
	}
	// Rotate returned, so the relay has switched: no waiting.
	if code := relaytest.ErrorCode(t, wantStatus(t, r, old, 404)); code != "no_device" {
		t.Fatalf("old token: code %q; want no_device", code)
	}
	wantStatus(t, r, next, 200)
	// The rotation happened over the live session, not by reconnecting.
	if c.Context().Err() != nil {
		t.Fatal("the session ended during Rotate")
	}
	select {
	case c := <-a.sessions:
		t.Fatalf("Rotate reconnected (new session %v)", c)
	default:
	}
}

func TestAgentRotateBeforeRun(t *testing.T) {
	r := startRelay(t)
	a := newAgent(t, r.TLS, r.Addr)
	old := a.token(t) // creates the token file

	next, err := a.agent.Rotate(context.Background())
	if err != nil {
		t.Fatalf("Rotate before Run: %v", err)
	}
	if next == old || a.token(t) != next {
		t.Fatalf("after Rotate: returned %q, stored %q, old %q", next, a.token(t), old)
	}

	a.run(t)
	recv(t, a.sessions, "the first session")
	wantStatus(t, r, next, 200)
	wantStatus(t, r, old, 404)
}

func TestAgentRotateWhileRelayDown(t *testing.T) {
	r1 := startRelay(t)
	a := newAgent(t, r1.TLS, r1.Addr)
	a.run(t)
	recv(t, a.sessions, "the first session")
	old := a.token(t)

	r1.Stop()
	// The Agent logs the end of a session after it has dropped it.
	recv(t, a.logs.first(logEnded), "the Agent to drop the session")
	// Rotate may wait for a dial to the dead relay to give up (bounded by
	// the Agent's LoginTimeout); it must not fail.
	next, err := a.agent.Rotate(context.Background())
	if err != nil {
		t.Fatalf("Rotate while the relay is down: %v", err)
	}
	if next == old || a.token(t) != next {
		t.Fatalf("after Rotate: returned %q, stored %q, old %q", next, a.token(t), old)
	}

	r2 := r1.Restart(t)
	recv(t, a.sessions, "a session with the restarted relay")
	wantStatus(t, r2, next, 200)
	wantStatus(t, r2, old, 404)
}

func writeToken(t *testing.T, a *agentEnv, content string) {
	t.Helper()
	if err := os.WriteFile(a.store.Path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAgentRunStopsOnBadTokenFile(t *testing.T) {
	r := startRelay(t)
	for _, content := range []string{
		strings.Repeat("abc", 11) + "\n", // well-formed, too few distinct characters
		"not a token at all\n",
	} {
		a := newAgent(t, r.TLS, r.Addr)
		writeToken(t, a, content)
		_, result := a.run(t)
		err := wantReturn(t, result, prompt, "starting with a bad token file")
		if !errors.Is(err, wire.ErrTokenWeak) && !errors.Is(err, wire.ErrTokenMalformed) {
			t.Fatalf("Run with token file %q = %v; want the token error", content, err)
		}
		select {
		case c := <-a.sessions:
			t.Fatalf("a session %v started with a bad token", c)
		default:
		}
	}
}

// The error Run returns for a bad token file says what is wrong with it in
// a form callers can test (errors.Is), and does not claim the relay refused
// a login that never reached it.
func TestAgentRunBadTokenFileKeepsCause(t *testing.T) {
	r := startRelay(t)
	a := newAgent(t, r.TLS, r.Addr)
	writeToken(t, a, strings.Repeat("abc", 11)+"\n")
	_, result := a.run(t)
	err := wantReturn(t, result, prompt, "starting with a weak token file")
	if !errors.Is(err, wire.ErrTokenWeak) {
		t.Errorf("Run = %v; want an error wrapping wire.ErrTokenWeak", err)
	}
}

func TestAgentRunReturnsNilOnCancel(t *testing.T) {
	t.Run("connected", func(t *testing.T) {
		r := startRelay(t)
		a := newAgent(t, r.TLS, r.Addr)
		cancel, result := a.run(t)
		c := recv(t, a.sessions, "the first session")
		cancel()
		if err := wantReturn(t, result, prompt, "cancel"); err != nil {
			t.Fatalf("Run = %v; want nil", err)
		}
		select {
		case <-c.Context().Done():
		default:
			t.Fatal("Run returned with its session still open")
		}
	})

	t.Run("already cancelled", func(t *testing.T) {
		r := startRelay(t)
		a := newAgent(t, r.TLS, r.Addr)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- a.agent.Run(ctx) }()
		if err := wantReturn(t, done, prompt, "cancel"); err != nil {
			t.Fatalf("Run = %v; want nil", err)
		}
	})

	t.Run("dialing", func(t *testing.T) {
		// A UDP socket that never answers: the Agent's dial hangs in the
		// QUIC handshake until its LoginTimeout (10 s by default).
		hole, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer hole.Close()
		a := newAgent(t, nil, hole.LocalAddr().String())
		a.agent.Options.LoginTimeout = 0 // the default, 10 s
		cancel, result := a.run(t)
		hole.SetReadDeadline(time.Now().Add(relaytest.WaitTimeout))
		if _, _, err := hole.ReadFrom(make([]byte, 2048)); err != nil {
			t.Fatalf("no dial reached the socket: %v", err)
		}
		cancel()
		if err := wantReturn(t, result, prompt, "cancel during a dial"); err != nil {
			t.Fatalf("Run = %v; want nil", err)
		}
	})

	t.Run("backing off", func(t *testing.T) {
		r := startRelay(t)
		a := newAgent(t, r.TLS, r.Addr)
		// A device that does not trust the relay fails every dial, which is
		// not a refusal: it backs off, here for up to an hour.
		a.agent.Options.TLS = &tls.Config{}
		a.agent.Backoff = device.Backoff{Base: time.Hour, Max: time.Hour}
		cancel, result := a.run(t)
		recv(t, a.logs.first(logDialFailed), "the first failed dial")
		cancel()
		if err := wantReturn(t, result, prompt, "cancel during backoff"); err != nil {
			t.Fatalf("Run = %v; want nil", err)
		}
	})
}

// Rotate takes a context, and the one caller (cmd/device's SIGHUP, with a
// 10 s timeout) relies on it to bound the call. But while the Agent is
// dialing, connect holds the Agent's mutex for the whole dial (up to
// LoginTimeout, 10 s by default) and Rotate waits for that mutex without
// looking at ctx; when it finally gets it, it saves a new token even though
// its ctx has long expired.
func TestAgentRotateHonoursContextWhileDialing(t *testing.T) {
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	a := newAgent(t, nil, hole.LocalAddr().String())
	a.agent.Options.LoginTimeout = 0 // the default, 10 s
	old := a.token(t)
	cancel, _ := a.run(t)
	hole.SetReadDeadline(time.Now().Add(relaytest.WaitTimeout))
	if _, _, err := hole.ReadFrom(make([]byte, 2048)); err != nil {
		t.Fatalf("no dial reached the socket: %v", err)
	}

	ctx, stop := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer stop()
	type result struct {
		tok string
		err error
	}
	rotated := make(chan result, 1)
	go func() {
		tok, err := a.agent.Rotate(ctx)
		rotated <- result{tok, err}
	}()
	// However this test ends, Rotate must be done before it does.
	defer func() {
		cancel() // ends the dial, which frees the mutex
		recv(t, rotated, "Rotate to return after the Agent stopped")
	}()
	select {
	case res := <-rotated:
		rotated <- res // for the deferred wait
		if !errors.Is(res.err, context.DeadlineExceeded) {
			t.Errorf("Rotate = %q, %v; want context.DeadlineExceeded", res.tok, res.err)
		}
		if got := a.token(t); got != old {
			t.Errorf("store holds %q after a failed Rotate; want the old token", got)
		}
	case <-time.After(prompt):
		t.Errorf("Rotate with a 100ms context still blocked after %v while the Agent was dialing", prompt)
	}
}
