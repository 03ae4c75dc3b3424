package device_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's worker-pool cleaner notices Stop only after its
		// MaxIdleWorkerDuration sleep (10 s), and its Date-header ticker
		// lives for the process: both are fasthttp's, bounded, not ours.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

// waitFor bounds every wait in these tests; nothing here should take more
// than a fraction of it on loopback.
const waitFor = 10 * time.Second

// pki is one test's TLS material: the relay's config and a device config
// that trusts the development CA. A restarted relay reuses it.
type pki struct {
	server *tls.Config
	device *tls.Config
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dev, err := certs.LoadOrCreateDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pool, err := certs.CAPool(dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return pki{server: dev.TLS, device: &tls.Config{RootCAs: pool}}
}

// relay is a real relay node on loopback with an HTTPS client trusting it.
type relay struct {
	t    *testing.T
	addr string // HOST:PORT, TCP and UDP
	http *http.Client
	stop func() // drains the relay and waits for Run to return; idempotent
}

// reconnectSpread keeps go-away delays short so that reconnect tests are
// fast; the relay draws each device's delay from [0, reconnectSpread).
const reconnectSpread = 50 * time.Millisecond

// startRelay runs a relay on listen ("127.0.0.1:0" or a previous relay's
// address) until stop or the end of the test.
func startRelay(t *testing.T, p pki, listen string) *relay {
	t.Helper()
	r, err := server.New(server.Config{
		Listen:          listen,
		TLS:             p.server,
		ReconnectSpread: reconnectSpread,
		// Tests may end relays with devices still connected; do not wait.
		DrainTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: p.device.Clone()}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	rl := &relay{t: t, addr: r.Addr().String(), http: client}
	rl.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay Run: %v", err)
			}
			client.CloseIdleConnections()
		})
	}
	t.Cleanup(rl.stop)
	return rl
}

// post sends a webhook for the device holding token and returns status and
// body.
func (r *relay) post(mode, token, body string) (int, []byte) {
	r.t.Helper()
	q := url.Values{"mode": {mode}, "token": {token}}
	resp, err := r.http.Post("https://"+r.addr+"/cloud?"+q.Encode(), "application/json", bytes.NewBufferString(body))
	if err != nil {
		r.t.Fatalf("webhook: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("webhook body: %v", err)
	}
	return resp.StatusCode, b
}

// wantStatus posts {"text":"x"} with token and checks the status.
func (r *relay) wantStatus(token string, want int) []byte {
	r.t.Helper()
	status, body := r.post("notify", token, `{"text":"x"}`)
	if status != want {
		r.t.Fatalf("webhook to %s: %d %s; want %d", r.addr, status, body, want)
	}
	return body
}

// errorCode decodes the relay's error shape {"error","code"}.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || e.Code == "" {
		t.Fatalf("error body %q is not {\"error\",\"code\"}: %v", body, err)
	}
	return e.Code
}

// recv waits for one value from ch, bounded by waitFor.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out after %v waiting for %s", waitFor, what)
		panic("unreachable")
	}
}

// message is what a test handler received.
type message struct{ mode, body string }

// recorder is a Handler that reports every message on got and answers 200
// {"ok":true}.
func recorder() (device.Handler, <-chan message) {
	got := make(chan message, 64)
	return device.HandlerFunc(func(_ context.Context, mode string, body []byte) (int, []byte) {
		got <- message{mode, string(body)}
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

func newAgent(t *testing.T, p pki, addr string) *agentEnv {
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
		Options: device.Options{TLS: p.device, Agent: "device-test", LoginTimeout: agentLoginWait},
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
		case <-time.After(waitFor):
			t.Errorf("Agent.Run did not return within %v of cancel", waitFor)
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
