package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
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

// env is one relay on loopback with an HTTPS client that trusts it.
type env struct {
	t     *testing.T
	relay *server.Relay
	addr  string // HOST:PORT, TCP and UDP
	http  *http.Client
	tls   *tls.Config // for devices
	logs  *syncBuffer // everything the relay logged, at debug level
	stop  func()      // drains the relay and waits for Run to return
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, mut func(*server.Config)) *env {
	t.Helper()
	dev, err := certs.LoadOrCreateDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg := server.Config{
		Listen: "127.0.0.1:0",
		Admin:  "127.0.0.1:0",
		TLS:    dev.TLS,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// Tests end relays with devices still connected; do not wait for them.
		DrainTimeout: 2 * time.Second,
	}
	if mut != nil {
		mut(&cfg)
	}
	r, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := certs.CAPool(dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{RootCAs: pool}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf.Clone(), MaxIdleConnsPerHost: 64}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	e := &env{t: t, relay: r, addr: r.Addr().String(), http: client, tls: tlsConf, logs: logs}
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay Run: %v", err)
			}
			client.CloseIdleConnections()
		})
	}
	t.Cleanup(e.stop)
	return e
}

func (e *env) url(mode, token string) string {
	q := url.Values{}
	if mode != "" {
		q.Set("mode", mode)
	}
	if token != "" {
		q.Set("token", token)
	}
	return "https://" + e.addr + "/cloud?" + q.Encode()
}

// post sends a webhook and returns status and body.
func (e *env) post(mode, token, body string) (int, []byte) {
	e.t.Helper()
	return e.do(http.MethodPost, e.url(mode, token), body, nil)
}

func (e *env) do(method, u, body string, hdr http.Header) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewBufferString(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// dial logs a device in with token and serves h until the test ends. The
// returned channel yields Serve's result.
func (e *env) dial(token string, h device.Handler) (*device.Conn, <-chan error) {
	e.t.Helper()
	c, err := device.Dial(context.Background(), e.addr, token, device.Options{TLS: e.tls, Agent: "test"})
	if err != nil {
		e.t.Fatalf("device dial: %v", err)
	}
	served, done := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(done)
		served <- c.Serve(context.Background(), h)
	}()
	e.t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c, served
}

// echo replies with who it is and what it got.
func echo(name string) device.Handler {
	return device.HandlerFunc(func(_ context.Context, mode string, body []byte) (int, []byte) {
		b, _ := json.Marshal(map[string]any{"device": name, "mode": mode, "body": json.RawMessage(body)})
		return 200, b
	})
}

// errorCode decodes the relay's error shape and checks it has both fields.
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
