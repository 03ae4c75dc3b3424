// Package relaytest runs real relays on loopback for tests and benchmarks,
// as net/http/httptest does for HTTP servers.
//
// A test starts a relay with Start, talks to it over HTTPS (Post, Do) and
// QUIC (Dial), and leaves the rest to tb.Cleanup:
//
//	r := relaytest.Start(t, func(c *server.Config) { c.Webhook.MaxBody = 1024 })
//	r.Dial(t, tok, handler)
//	status, body := r.Post(t, "notify", tok, `{"text":"hi"}`)
//
// Only tests and benchmarks import this package.
package relaytest

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/certs/trust"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/server"
)

// drainTimeout bounds a test relay's shutdown. Tests end relays with devices
// still connected and must not wait the production default for them.
const drainTimeout = 2 * time.Second

// Relay is a relay node serving on loopback until Stop or the end of the
// test that started it. The exported fields are static after Start; the
// Addr field is the embedded server.Node's Addr().String().
type Relay struct {
	*server.Node

	Addr   string       // HOST:PORT, TCP (HTTPS) and UDP (QUIC)
	CAFile string       // the development CA, PEM
	TLS    *tls.Config  // trusts the relay's dev CA, for devices and HTTPS clients; Clone to modify
	HTTP   *http.Client // HTTPS client trusting the relay
	Logs   *Buffer      // everything the relay logged, at debug level (unless mutate set Logger)

	tb     testing.TB
	cfg    server.Config // as started; Restart reuses it
	ownLog bool          // cfg.Logger writes to Logs (mutate did not replace it)
	cancel context.CancelFunc
	done   chan error // Run's result
	once   sync.Once  // guards Stop
}

// Start runs a relay with a development PKI in tb.TempDir(), listening on
// 127.0.0.1:0 (admin too) with a short DrainTimeout. mutate, if not nil,
// adjusts the configuration before the relay is created. Stop is
// registered with tb.Cleanup.
func Start(tb testing.TB, mutate func(*server.Config)) *Relay {
	tb.Helper()
	return StartDev(tb, func(c *server.Config, _ *certs.Dev) {
		if mutate != nil {
			mutate(c)
		}
	})
}

// NoLimits turns the webhook and handshake rate limits off, for tests and benchmarks
// that send floods on purpose. Everything a test sends comes from one
// address (loopback), mostly to a few tokens: at production defaults a
// flood meets the source and token limits within a fraction of a second.
//
//	r := relaytest.Start(t, relaytest.NoLimits)
func NoLimits(c *server.Config) {
	c.Webhook.PerToken, c.Webhook.PerSource, c.Webhook.Misses = limit.Rate{}, limit.Rate{}, limit.Rate{}
	c.HandshakesPerSource = limit.Rate{}
}

// StartDev is Start with a mutate that also sees the relay's development
// PKI, for settings derived from it: the short-lived UDP certificate that
// cmd/relay serves to browsers in development, say.
func StartDev(tb testing.TB, mutate func(*server.Config, *certs.Dev)) *Relay {
	tb.Helper()
	dev, err := certs.LoadOrCreateDev(tb.TempDir())
	if err != nil {
		tb.Fatalf("relaytest: dev PKI: %v", err)
	}
	pool, err := trust.CAPool(dev.CAFile)
	if err != nil {
		tb.Fatalf("relaytest: CA pool: %v", err)
	}
	logs := &Buffer{}
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.Admin = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLS = dev.TLS
	cfg.Logger = debugLogger(logs)
	cfg.DrainTimeout = drainTimeout
	logger := cfg.Logger
	if mutate != nil {
		mutate(&cfg, dev)
	}
	r := &Relay{CAFile: dev.CAFile, TLS: &tls.Config{RootCAs: pool}, Logs: logs, cfg: cfg, ownLog: cfg.Logger == logger}
	r.run(tb)
	return r
}

// Restart stops r and starts a new relay on the same address with the same
// certificates and configuration, and fresh Logs. Devices that trusted r
// trust the new relay.
func (r *Relay) Restart(tb testing.TB) *Relay {
	tb.Helper()
	r.Stop()
	next := &Relay{CAFile: r.CAFile, TLS: r.TLS, Logs: &Buffer{}, cfg: r.cfg, ownLog: r.ownLog}
	next.cfg.Listen = r.Addr
	if next.ownLog {
		next.cfg.Logger = debugLogger(next.Logs)
	}
	next.run(tb)
	return next
}

// Sibling starts another relay beside r, on new loopback addresses, with
// the same certificates and configuration as mutate changes it: devices and
// callers that trust r trust it too. It runs until Stop or the end of the
// test.
func (r *Relay) Sibling(tb testing.TB, mutate func(*server.Config)) *Relay {
	tb.Helper()
	next := &Relay{CAFile: r.CAFile, TLS: r.TLS, Logs: &Buffer{}, cfg: r.cfg, ownLog: r.ownLog}
	next.cfg.Listen, next.cfg.Admin = "127.0.0.1:0", "127.0.0.1:0"
	if next.ownLog {
		next.cfg.Logger = debugLogger(next.Logs)
	}
	if mutate != nil {
		mutate(&next.cfg)
	}
	next.run(tb)
	return next
}

func debugLogger(b *Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// run creates the relay from r.cfg and serves it in the background.
func (r *Relay) run(tb testing.TB) {
	tb.Helper()
	s, err := server.New(r.cfg)
	if err != nil {
		tb.Fatalf("relaytest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.Node, r.tb, r.cancel, r.done = s, tb, cancel, make(chan error, 1)
	r.Addr = s.Addr().String()
	// Tests post from dozens of goroutines at once; keep their connections.
	r.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: r.TLS.Clone(), MaxIdleConnsPerHost: 64}}
	go func() { r.done <- s.Run(ctx) }()
	tb.Cleanup(r.Stop)
}

// Stop drains the relay and waits for Run to return, reporting its error
// through the test that started the relay. It is idempotent.
func (r *Relay) Stop() {
	r.once.Do(func() {
		// First: a connection the client dialled for a request that then
		// went on another (Go's transport races dials) is new, not idle,
		// to the server for 5 s, and its shutdown would wait that long,
		// up to DrainTimeout.
		r.HTTP.CloseIdleConnections()
		r.cancel()
		if err := <-r.done; err != nil {
			r.tb.Errorf("relay Run: %v", err)
		}
		r.HTTP.CloseIdleConnections()
	})
}

// Dial logs a device in with token and serves h until the end of the test.
// The returned channel yields Serve's result.
func (r *Relay) Dial(tb testing.TB, token string, h device.Handler) (*device.Conn, <-chan error) {
	tb.Helper()
	return r.DialWith(tb, token, h, device.Options{})
}

// DialWith is Dial with options (WebTransport, say); TLS defaults to r.TLS.
func (r *Relay) DialWith(tb testing.TB, token string, h device.Handler, opt device.Options) (*device.Conn, <-chan error) {
	tb.Helper()
	if opt.TLS == nil {
		opt.TLS = r.TLS
	}
	if opt.Agent == "" {
		opt.Agent = "test"
	}
	c, err := device.Dial(context.Background(), r.Addr, token, opt)
	if err != nil {
		tb.Fatalf("device dial: %v", err)
	}
	served, done := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(done)
		served <- c.Serve(context.Background(), h)
	}()
	tb.Cleanup(func() {
		c.Close()
		<-done
	})
	return c, served
}

// MQTT turns on both MQTT listeners on loopback: plain (MQTTAddr) and TLS
// with the relay's development certificate (MQTTSAddr).
//
//	r := relaytest.Start(t, relaytest.MQTT)
func MQTT(c *server.Config) { c.MQTTListen, c.MQTTSListen = "127.0.0.1:0", "127.0.0.1:0" }
