package device_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, relaytest.LeakOptions...)
}

// reconnectSpread keeps go-away delays short so that reconnect tests are
// fast; the relay draws each device's delay from [0, reconnectSpread).
const reconnectSpread = 50 * time.Millisecond

// startRelay runs a relay on loopback, with reconnectSpread, until it is
// stopped or the test ends.
func startRelay(t *testing.T) *relaytest.Relay {
	t.Helper()
	return relaytest.Start(t, func(c *server.Config) { c.ReconnectSpread = reconnectSpread })
}

// wantStatus posts {"text":"x"} with token and checks the status.
func wantStatus(t *testing.T, r *relaytest.Relay, token string, want int) []byte {
	t.Helper()
	status, body := r.Post(t, "notify", token, `{"text":"x"}`)
	if status != want {
		t.Fatalf("webhook to %s: %d %s; want %d", r.Addr, status, body, want)
	}
	return body
}

// recv waits for one value from ch, bounded by relaytest.WaitTimeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(relaytest.WaitTimeout):
		t.Fatalf("timed out after %v waiting for %s", relaytest.WaitTimeout, what)
		panic("unreachable")
	}
}

// message is what a test handler received.
type message struct{ mode, body string }

// recorder is a Handler that reports every message on got and answers 200
// {"ok":true}.
func recorder() (device.Handler, <-chan message) {
	got := make(chan message, 64)
	return device.HandlerFunc(func(_ context.Context, m wire.Message) (int, []byte) {
		got <- message{m.Mode, string(m.Body)}
		return 200, []byte(`{"ok":true}`)
	}), got
}

// logSignals is a slog.Handler that lets a test wait for the first record
// with a given message: the Agent's only outward sign of some transitions
// (a session ended and was cleared; a dial failed and it is backing off).
type logSignals struct {
	mu   sync.Mutex // guards seen
	seen map[string]*signal
}

type signal struct {
	ch   chan struct{}
	done bool
}

func newLogSignals() *logSignals { return &logSignals{seen: map[string]*signal{}} }

func (l *logSignals) get(msg string) *signal {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.seen[msg]
	if !ok {
		s = &signal{ch: make(chan struct{})}
		l.seen[msg] = s
	}
	return s
}

// first returns a channel closed once a record with msg has been logged.
func (l *logSignals) first(msg string) <-chan struct{} { return l.get(msg).ch }

func (l *logSignals) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSignals) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logSignals) WithGroup(string) slog.Handler            { return l }
func (l *logSignals) Handle(_ context.Context, r slog.Record) error {
	s := l.get(r.Message)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !s.done {
		s.done = true
		close(s.ch)
	}
	return nil
}

// Messages the Agent logs (agent.go).
const (
	logEnded       = "relay connection ended"
	logDialFailed  = "relay connection failed"
	agentLoginWait = 2 * time.Second // bounds a dial to a relay that is gone
)

// agentEnv is an Agent with a FileStore in a temporary directory, fast
// backoff, and a session channel.
type agentEnv struct {
	agent    *device.Agent
	store    device.FileStore
	sessions chan *device.Conn // one per new live session
	got      <-chan message
	logs     *logSignals
}

// newAgent makes an Agent for the relay at addr that trusts it with
// tlsConf (nil where nothing answers and there is nothing to trust).
func newAgent(t *testing.T, tlsConf *tls.Config, addr string) *agentEnv {
	t.Helper()
	h, got := recorder()
	e := &agentEnv{
		store:    device.FileStore{Path: filepath.Join(t.TempDir(), "token")},
		sessions: make(chan *device.Conn, 16),
		got:      got,
		logs:     newLogSignals(),
	}
	e.agent = &device.Agent{
		Addr:    addr,
		Options: device.Options{TLS: tlsConf, Agent: "device-test", LoginTimeout: agentLoginWait},
		Handler: h,
		Tokens:  e.store,
		Backoff: device.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		Logger:  slog.New(e.logs),
		OnSession: func(c *device.Conn) {
			e.sessions <- c
		},
	}
	return e
}

// run starts Agent.Run. The returned channel yields Run's result; the
// Agent is stopped, and must have returned, by the end of the test.
func (e *agentEnv) run(t *testing.T) (cancel func(), result <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res, finished := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(finished)
		res <- e.agent.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(relaytest.WaitTimeout):
			t.Errorf("Agent.Run did not return within %v of cancel", relaytest.WaitTimeout)
		}
	})
	return cancel, res
}

func (e *agentEnv) token(t *testing.T) string {
	t.Helper()
	tok, err := e.store.Load()
	if err != nil {
		t.Fatalf("token store: %v", err)
	}
	return tok
}
