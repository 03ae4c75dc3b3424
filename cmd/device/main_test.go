package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pixelrelay/relay/internal/flagenv"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, relaytest.LeakOptions...)
}

type fixture struct {
	relay          *relaytest.Relay
	tokenFile      string
	stdout, stderr *relaytest.Buffer // shared with the agent
	hup            chan os.Signal
}

// startRelayAndAgent runs a relay and the device command (in process, with
// its real flag parsing) and waits until the agent's token is routable.
func startRelayAndAgent(t *testing.T, extra ...string) *fixture {
	t.Helper()
	return startRelayAndAgentWith(t, nil, extra...)
}

// startRelayAndAgentWith is startRelayAndAgent with a relay that mutate
// configures.
func startRelayAndAgentWith(t *testing.T, mutate func(*server.Config), extra ...string) *fixture {
	t.Helper()
	r := relaytest.Start(t, mutate)
	return startAgent(t, r, r.Addr, extra...)
}

// startAgent runs the device command against r, dialling addr (r's, or a
// front of it), and waits until the agent's token is routable.
func startAgent(t *testing.T, r *relaytest.Relay, addr string, extra ...string) *fixture {
	t.Helper()
	f := &fixture{
		relay:     r,
		tokenFile: filepath.Join(t.TempDir(), "token"),
		stdout:    &relaytest.Buffer{},
		stderr:    &relaytest.Buffer{},
		hup:       make(chan os.Signal, 1),
	}
	args := append([]string{"--relay", addr, "--ca", r.CAFile, "--token-file", f.tokenFile}, extra...)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, f.stdout, f.stderr, f.hup) }()
	// Registered after the relay's Stop, so it runs before it.
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("device run: %v", err)
		}
	})
	relaytest.WaitFor(t, func() bool { return r.Router().Len() == 1 })
	return f
}

func (f *fixture) token(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(f.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (f *fixture) post(t *testing.T, token, body string) (int, string) {
	t.Helper()
	status, b := f.relay.Post(t, "notify", token, body)
	return status, string(b)
}

func TestAgentPrintsMessagesAndRotatesOnSIGUSR1(t *testing.T) {
	f := startRelayAndAgent(t)
	tok := f.token(t)
	if st, err := os.Stat(f.tokenFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want 0600", err, st.Mode())
	}
	if err := wire.CheckToken([]byte(tok)); err != nil {
		t.Fatalf("generated token: %v", err)
	}
	if !strings.Contains(f.stderr.String(), tok) {
		t.Fatal("the agent did not show its token on stderr")
	}
	if status, body := f.post(t, tok, `{"text":"hi"}`); status != 200 || body != `{"ok":true}` {
		t.Fatalf("webhook: %d %s", status, body)
	}
	if out := f.stdout.String(); out != `{"mode":"notify","body":{"text":"hi"}}`+"\n" {
		t.Fatalf("stdout %q", out)
	}

	// SIGHUP rotates nothing (a service manager's reload must not change
	// the device's webhook address): the next webhook still passes.
	f.hup <- syscall.SIGHUP
	relaytest.WaitFor(t, func() bool { return strings.Contains(f.stderr.String(), "SIGUSR1 rotates") })
	if status, _ := f.post(t, tok, `{}`); status != 200 || f.token(t) != tok {
		t.Fatalf("after SIGHUP: %d, token changed %v; want 200 and the same token", status, f.token(t) != tok)
	}
	f.hup <- syscall.SIGUSR1
	relaytest.WaitFor(t, func() bool { return f.token(t) != tok })
	next := f.token(t)
	// The file changes after the relay confirmed the rotation.
	if status, _ := f.post(t, tok, `{}`); status != 404 {
		t.Fatalf("old token after SIGUSR1: %d, want 404", status)
	}
	if status, _ := f.post(t, next, `{}`); status != 200 {
		t.Fatalf("new token after SIGUSR1: %d, want 200", status)
	}
	if !strings.Contains(f.stderr.String(), next) {
		t.Fatal("the agent did not log its new token")
	}
}

func TestAgentForwardsToClock(t *testing.T) {
	got := make(chan string, 1)
	clock := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.URL.Path + " " + string(b)
		io.WriteString(w, "OK")
	}))
	defer clock.Close()
	f := startRelayAndAgent(t, "--forward", clock.URL, "--forward-api", "v3")
	status, body := f.post(t, f.token(t), `{"text":"hi"}`)
	if status != 200 || !strings.Contains(body, `"clock_status":200`) {
		t.Fatalf("webhook: %d %s", status, body)
	}
	if g := <-got; g != `/api/notify {"text":"hi"}` {
		t.Fatalf("clock got %q", g)
	}
}

func TestAgentReportsUnreachableClock(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	f := startRelayAndAgent(t, "--forward", dead)
	status, body := f.post(t, f.token(t), `{"text":"hi"}`)
	if status != 502 || !strings.Contains(body, `"code":"clock_unreachable"`) {
		t.Fatalf("webhook: %d %s; want 502 clock_unreachable", status, body)
	}
}

// TestAgentOverEveryTransport: the agent logs in and answers webhooks
// whichever transport it is told to use.
func TestAgentOverEveryTransport(t *testing.T) {
	for _, tr := range []string{"quic", "webtransport", "websocket", "auto"} {
		t.Run(tr, func(t *testing.T) {
			f := startRelayAndAgent(t, "--transport", tr)
			if status, body := f.post(t, f.token(t), `{"text":"hi"}`); status != 200 {
				t.Fatalf("webhook over %s: %d %s", tr, status, body)
			}
			want := tr
			if tr == "auto" {
				want = "quic" // UDP works here: QUIC wins its head start
			}
			if got := f.relay.Logs.String(); !strings.Contains(got, "transport="+want) {
				t.Fatalf("the relay logged no %s session:\n%s", want, got)
			}
		})
	}
}

// TestAgentDefaultsToAFallbackWhereUDPIsBlocked: the agent as installed,
// with no --transport, on a network that lets no UDP through (a front that
// forwards the relay's TCP port and swallows UDP): it logs in over
// WebSocket and answers webhooks.
func TestAgentDefaultsToAFallbackWhereUDPIsBlocked(t *testing.T) {
	r := relaytest.Start(t, nil)
	front, _ := relaytest.TCPOnlyFront(t, r.Addr, true)
	f := startAgent(t, r, front)
	if status, body := f.post(t, f.token(t), `{"text":"hi"}`); status != 200 {
		t.Fatalf("webhook: %d %s", status, body)
	}
	if got := r.Metric(t, `relay_logins_total{transport="websocket"}`); got != 1 {
		t.Fatalf("the relay counted %v WebSocket logins, want 1; its log:\n%s", got, r.Logs.String())
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{{"--forward-api", "v4"}, {"stray"}, {"--keepalive", "soon"}, {"--clock-timeout", "0s"}, {"--transport", "tcp"}, {"--auto-retry", "0s"}} {
		if _, err := parse(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	t.Setenv("DEVICE_RELAY", "relay.example:443")
	o, err := parse(nil, io.Discard)
	if err != nil || o.relay != "relay.example:443" {
		t.Fatalf("DEVICE_RELAY: %v %+v", err, o)
	}
}

// TestServerName: --server-name is the name checked against the relay's
// certificate. The development certificate names localhost and the
// loopback addresses, so dialling 127.0.0.1 (an IP: no SNI) works as it is
// and with --server-name localhost, and fails verification with a name the
// certificate does not carry.
func TestServerName(t *testing.T) {
	f := startRelayAndAgent(t, "--server-name", "localhost")
	if status, _ := f.post(t, f.token(t), `{}`); status != 200 {
		t.Fatalf("webhook with --server-name localhost: %d", status)
	}

	stderr := &relaytest.Buffer{}
	args := []string{"--relay", f.relay.Addr, "--ca", f.relay.CAFile, "--token-file", filepath.Join(t.TempDir(), "token"),
		"--server-name", "relay.example"}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, stderr, make(chan os.Signal)) }()
	relaytest.WaitFor(t, func() bool {
		return strings.Contains(stderr.String(), "relay.example") && strings.Contains(stderr.String(), "certificate")
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("device run: %v", err)
	}
	if n := f.relay.Router().Len(); n != 1 {
		t.Fatalf("%d devices routed; the one with the wrong name must not be", n)
	}
}

func TestVersionFlag(t *testing.T) {
	if _, err := parse([]string{"--version"}, io.Discard); !errors.Is(err, flagenv.ErrVersion) {
		t.Fatalf("--version: %v, want flagenv.ErrVersion (the build printed, exit 0)", err)
	}
}

// TestTokenShownOnceInStateDir: without --token-file the token lives in the
// state directory, and is printed when it is created, not on later starts.
func TestTokenShownOnceInStateDir(t *testing.T) {
	r := relaytest.Start(t, nil)
	state := filepath.Join(t.TempDir(), "state")
	start := func() *relaytest.Buffer {
		stderr := &relaytest.Buffer{}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"--relay", r.Addr, "--ca", r.CAFile, "--state-dir", state}, io.Discard, stderr, make(chan os.Signal))
		}()
		relaytest.WaitFor(t, func() bool { return strings.Contains(stderr.String(), "connected to relay") })
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return stderr
	}
	first := start().String()
	b, err := os.ReadFile(filepath.Join(state, "token"))
	if err != nil {
		t.Fatalf("token not in the state directory: %v", err)
	}
	tok := strings.TrimSpace(string(b))
	if !strings.Contains(first, tok) {
		t.Fatal("the new token was not shown")
	}
	if second := start().String(); strings.Contains(second, tok) || !strings.Contains(second, "device token loaded") {
		t.Fatalf("a later start shows the token again, or not where it is:\n%s", second)
	}
	if st, err := os.Stat(state); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state directory mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
}

// TestTokenSubcommand: `device token` prints a fresh token that LOGIN and
// an MQTT CONNECT take, and the clock's settings on stderr.
func TestTokenSubcommand(t *testing.T) {
	var toks []string
	for range 2 {
		var out, errOut strings.Builder
		if err := run(context.Background(), []string{"token", "--relay", "relay.example"}, &out, &errOut, nil); err != nil {
			t.Fatal(err)
		}
		tok := strings.TrimSuffix(out.String(), "\n")
		if err := wire.CheckToken([]byte(tok)); err != nil || strings.Contains(tok, "\n") {
			t.Fatalf("printed %q: %v", out.String(), err)
		}
		if !strings.Contains(errOut.String(), "Broker relay.example   Port 1883") {
			t.Fatalf("stderr %q does not show the clock's settings", errOut.String())
		}
		toks = append(toks, tok)
	}
	if toks[0] == toks[1] {
		t.Fatal("two runs printed the same token")
	}
	if err := run(context.Background(), []string{"token", "extra"}, io.Discard, io.Discard, nil); err == nil {
		t.Fatal("an extra argument was taken")
	}
}
