package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
)

// TestRestartUnderTraffic restarts a relay while callers keep sending: every
// webhook gets a definite answer (a status, or a refused connection while no
// relay listens), none hangs, and every device is back within the reconnect
// window.
func TestRestartUnderTraffic(t *testing.T) {
	const devices, spread = 20, 500 * time.Millisecond
	// Callers send as fast as they can from one address, to 20 tokens:
	// without NoLimits most answers would be 429s, which is not what this
	// test is about.
	r1 := relaytest.Start(t, func(c *server.Config) {
		c.ReconnectSpread = spread
		relaytest.NoLimits(c)
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sessions atomic.Int64
	tokens := make([]string, devices)
	var agents sync.WaitGroup
	for i := range devices {
		store := device.FileStore{Path: filepath.Join(t.TempDir(), "token")}
		tok, err := store.Load()
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = tok
		a := &device.Agent{
			Addr:      r1.Addr,
			Options:   device.Options{TLS: r1.TLS, Transport: transport.Kind(i % 2)},
			Handler:   echo(fmt.Sprint(i)),
			Tokens:    store,
			Backoff:   device.Backoff{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond},
			OnSession: func(*device.Conn) { sessions.Add(1) },
		}
		agents.Go(func() { a.Run(ctx) })
	}
	defer agents.Wait()
	defer cancel()
	relaytest.WaitFor(t, func() bool { return r1.Router().Len() == devices })

	// Callers: bounded in count and time.
	var mu sync.Mutex
	outcomes := map[string]int{}
	stop := make(chan struct{})
	var callers sync.WaitGroup
	client := &http.Client{Transport: r1.HTTP.Transport, Timeout: 10 * time.Second}
	for c := range 4 {
		callers.Go(func() {
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(r1.URL("notify", tokens[(c+i)%devices]), "application/json", strings.NewReader(`{"text":"x"}`))
				key := ""
				switch {
				case err == nil:
					key = fmt.Sprint(resp.StatusCode)
					resp.Body.Close()
				case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), strings.Contains(err.Error(), "EOF"):
					key = "refused or closed unread"
				default:
					key = "error: " + err.Error()
				}
				mu.Lock()
				outcomes[key]++
				mu.Unlock()
			}
		})
	}

	before := sessions.Load()
	r2 := r1.Restart(t) // drains r1: go-away with delays in [0, spread)
	restarted := time.Now()
	relaytest.WaitFor(t, func() bool { return r2.Router().Len() == devices })
	back := time.Since(restarted)
	close(stop)
	callers.Wait()

	if n := sessions.Load() - before; n < devices {
		t.Errorf("%d new sessions after the restart, want %d", n, devices)
	}
	// Spread plus reconnect and backoff slack; WaitFor's own bound is 10 s.
	if back > spread+3*time.Second {
		t.Errorf("devices took %v to come back, spread was %v", back, spread)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("outcomes during the restart: %v; all %d devices back after %v", outcomes, devices, back)
	for k, n := range outcomes {
		switch k {
		case "200", "503", "404", "502", "refused or closed unread":
		default:
			t.Errorf("%d webhooks ended with %q", n, k)
		}
	}
	if outcomes["200"] == 0 {
		t.Error("no webhook succeeded")
	}
}

// TestDrainingRelayIsNotReady: between SIGTERM and exit, /readyz answers
// 503 (load balancers stop sending), new webhooks get 503 draining with
// Retry-After, and the message in flight still gets its answer.
func TestDrainingRelayIsNotReady(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.DrainTimeout = 5 * time.Second })
	tok := wire.NewToken()
	b := newBlocker()
	e.Dial(t, tok, b)
	inflight := make(chan int, 1)
	go func() { s, _ := e.Post(t, "notify", tok, `{}`); inflight <- s }()
	<-b.arrived

	stopped := make(chan struct{})
	go func() { e.Stop(); close(stopped) }()
	ready := "http://" + e.AdminAddr().String() + "/readyz"
	relaytest.WaitFor(t, func() bool {
		resp, err := http.Get(ready)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	resp, err := e.HTTP.Post(e.URL("notify", tok), "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("new webhook while draining: %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(b.release)
	if s := <-inflight; s != 200 {
		t.Fatalf("the message in flight got %d, want 200", s)
	}
	<-stopped
}

// TestLoginWhileDrainingIsRefused: a device that dials a draining relay
// completes its handshake and is refused with draining at once, on every
// transport, instead of waiting out a dial timeout.
func TestLoginWhileDrainingIsRefused(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.DrainTimeout = time.Minute })
	// A raw device that takes its GOAWAY but does not leave keeps the
	// relay draining until it does.
	c, ctrl := login(t, e, wire.NewToken())
	stopped := make(chan struct{})
	go func() { e.Stop(); close(stopped) }()
	if typ, _ := readFrame(t, ctrl, wire.MaxControlPayload); typ != wire.FrameGoAway {
		t.Fatalf("relay sent %s, want GOAWAY", typ)
	}

	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			opt := tr.opt
			opt.TLS = e.TLS
			// Without the refusal the dial would end at this timeout.
			opt.LoginTimeout = protoWait
			began := time.Now()
			_, err := device.Dial(context.Background(), e.Addr, wire.NewToken(), opt)
			var re *device.RefusedError
			if !errors.As(err, &re) || re.Reason != wire.ReasonDraining || re.Permanent() {
				t.Fatalf("dial while draining: %v; want a transient refusal, %s", err, wire.ReasonDraining)
			}
			t.Logf("refused after %v", time.Since(began))
		})
	}

	ctrl.Close() // the held device leaves; the drain ends
	expectClose(t, c, wire.CloseNormal)
	<-stopped
}

// TestGoAwayRedirectMovesDevices: with --goaway-redirect, a relay that
// drains sends its devices to the named relay, which they reach at once.
func TestGoAwayRedirectMovesDevices(t *testing.T) {
	next := relaytest.Start(t, nil)
	e := next.Sibling(t, func(c *server.Config) {
		c.Session.Redirect = next.Addr
		c.ReconnectSpread = 0
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &device.Agent{
		Addr:    e.Addr,
		Options: device.Options{TLS: e.TLS},
		Handler: echo("moved"),
		Tokens:  device.FileStore{Path: filepath.Join(t.TempDir(), "token")},
		// Only the redirect can bring it back before the test's end.
		Backoff: device.Backoff{Base: time.Hour, Max: time.Hour},
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	relaytest.WaitFor(t, func() bool { return e.Router().Len() == 1 })
	e.Stop()
	relaytest.WaitFor(t, func() bool { return next.Router().Len() == 1 })
	tok, err := a.Tokens.Load()
	if err != nil {
		t.Fatal(err)
	}
	if s, body := next.Post(t, "notify", tok, `{}`); s != 200 {
		t.Fatalf("webhook to the relay redirected to: %d %s", s, body)
	}
}
