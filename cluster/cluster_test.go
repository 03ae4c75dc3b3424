package cluster

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSubjectCarriesTheHashNotTheToken(t *testing.T) {
	c := &Cluster{cfg: DefaultConfig()}
	tok := wire.NewToken()
	key := router.KeyOf([]byte(tok))
	subj := c.subject(key)
	if got, ok := c.keyOf(subj); !ok || got != key {
		t.Fatalf("keyOf(%q) = %x, %v", subj, got, ok)
	}
	if len(subj) != len("relay.dev.")+64 {
		t.Fatalf("subject %q", subj)
	}
	for _, bad := range []string{"relay.dev.", "relay.dev.zz", "other.dev." + subj[len("relay.dev."):], subj + "00"} {
		if _, ok := c.keyOf(bad); ok {
			t.Errorf("keyOf(%q) accepted", bad)
		}
	}
}

// claimDevice is a device bound on one node that answers other nodes'
// claims as the test sets it, and says it was asked.
type claimDevice struct {
	fakeDevice
	claim router.Claim
	err   error
	asked chan router.Key
}

func (d *claimDevice) Release(k router.Key) (router.Claim, error) {
	d.asked <- k
	return d.claim, d.err
}

// TestClaims: a node's claim for a token goes to the node that holds it,
// whose router asks the device there, and each answer comes back as sent; a
// token nobody holds is free at once. A device taken over is unbound there:
// no node holds the token any more.
func TestClaims(t *testing.T) {
	url := startNATS(t)
	key := router.KeyOf([]byte(wire.NewToken()))
	for _, tc := range []struct {
		claim router.Claim
		err   error
	}{{router.Taken, nil}, {router.Moved, nil}, {router.Free, router.ErrTakeoverLimited}} {
		holder, claimer := newNode(t, url, nil), newNode(t, url, nil)
		ctx := context.Background()
		if claimer.Held(ctx, key) {
			t.Fatal("held before anyone bound it")
		}
		if c, err := claimer.Claim(ctx, key); c != router.Free || err != nil {
			t.Fatalf("claim of a token nobody holds: %v %v", c, err)
		}
		d := &claimDevice{claim: tc.claim, err: tc.err, asked: make(chan router.Key, 1)}
		if c, err := holder.router.Bind(ctx, key, d); c != router.Free || err != nil {
			t.Fatalf("bind of a token nobody holds: %v %v", c, err)
		}
		if !claimer.Held(ctx, key) {
			t.Fatal("another node holds the token; Held says no")
		}
		c, err := claimer.Claim(ctx, key)
		if c != tc.claim || !errors.Is(err, tc.err) {
			t.Fatalf("claim: %v %v, want %v %v", c, err, tc.claim, tc.err)
		}
		if k := <-d.asked; k != key {
			t.Fatal("the holder was asked for another key")
		}
		if taken := tc.claim == router.Taken; claimer.Held(ctx, key) == taken || (holder.router.Lookup(key) == nil) != taken {
			t.Fatalf("after a claim answered %v: held %v, bound at the holder %v", tc.claim, claimer.Held(ctx, key), holder.router.Lookup(key) != nil)
		}
		holder.Close()
		claimer.Close()
	}
}

// TestRoutersAreOneRegistry: two nodes' routers, each with its cluster
// plugged in, act as one: a token bound on one is routed to from the
// other; a login on the other takes it over (the first device closed as
// replaced), after which the first node routes it across.
func TestRoutersAreOneRegistry(t *testing.T) {
	url := startNATS(t)
	a, b := newNode(t, url, nil), newNode(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a delivery carries its time left
	defer cancel()
	key := router.KeyOf([]byte(wire.NewToken()))
	if _, err := b.router.Deliver(ctx, key, router.Message{Mode: "notify"}); !errors.Is(err, router.ErrNoDevice) {
		t.Fatalf("a token bound nowhere: %v, want ErrNoDevice", err)
	}
	onA := &fakeDevice{name: "a"}
	a.router.Bind(ctx, key, onA)
	if rep, err := b.router.Route(key).Deliver(ctx, router.Message{Mode: "notify"}); err != nil || string(rep.Body) != `{"on":"a"}` {
		t.Fatalf("from b to the device on a: %s %v", rep.Body, err)
	}
	onB := &fakeDevice{name: "b"}
	if c, err := b.router.Bind(ctx, key, onB); c != router.Taken || err != nil {
		t.Fatalf("a login on b: %v %v, want taken", c, err)
	}
	if onA.closed.Load() != 1 || a.router.Lookup(key) != nil {
		t.Fatalf("the device on a: closed %d times, still bound %v", onA.closed.Load(), a.router.Lookup(key) != nil)
	}
	if rep, err := a.router.Deliver(ctx, key, router.Message{Mode: "notify"}); err != nil || string(rep.Body) != `{"on":"b"}` {
		t.Fatalf("from a to the device now on b: %s %v", rep.Body, err)
	}
	if !b.router.Unbind(ctx, key, onB) {
		t.Fatal("unbind on b")
	}
	if _, err := a.router.Deliver(ctx, key, router.Message{Mode: "notify"}); !errors.Is(err, router.ErrNoDevice) {
		t.Fatalf("once the device left b: %v, want ErrNoDevice", err)
	}
}

// fakeDevice answers every message with its name and may be taken over.
type fakeDevice struct {
	name   string
	closed atomic.Int32
}

func (d *fakeDevice) Deliver(context.Context, router.Message) (router.Reply, error) {
	return router.Reply{Status: 200, Body: []byte(`{"on":"` + d.name + `"}`)}, nil
}
func (d *fakeDevice) Close(router.CloseReason)               { d.closed.Add(1) }
func (*fakeDevice) Release(router.Key) (router.Claim, error) { return router.Taken, nil }

// newNode joins a node, with a router and a metrics registry of its own.
func newNode(t *testing.T, url string, mutate func(*Config)) *Cluster {
	t.Helper()
	return join(t, url, mutate, New)
}

// join is newNode with the constructor: New, or connect for a node that
// takes no request off its queue until the test runs dispatch.
func join(t *testing.T, url string, mutate func(*Config), newCluster func(*router.Router, Config) (*Cluster, error)) *Cluster {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URLs = []string{url}
	cfg.Metrics = prometheus.NewRegistry()
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := newCluster(router.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// metric reads one series of c's registry, as a scrape would; the test
// fails if it is not there.
func metric(t *testing.T, c *Cluster, name, label, value string) float64 {
	t.Helper()
	families, err := c.cfg.Metrics.(prometheus.Gatherer).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

// waitFor polls cond until it holds, failing the test after 10 s (as
// internal/relaytest.WaitFor does; that package would import this one
// through the server). It is for counts that no event announces.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// heldDevice answers a delivery only once unblocked: a request from another
// node that reaches it holds its serving slot until then.
type heldDevice struct {
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

// newHeldDevice returns a device unblocked at the latest when the test
// ends, before its nodes close (which wait for what they serve).
func newHeldDevice(t *testing.T) *heldDevice {
	d := &heldDevice{arrived: make(chan struct{}, 64), release: make(chan struct{})}
	t.Cleanup(d.Unblock)
	return d
}

func (d *heldDevice) Unblock() { d.once.Do(func() { close(d.release) }) }

func (d *heldDevice) Deliver(ctx context.Context, _ router.Message) (router.Reply, error) {
	d.arrived <- struct{}{}
	select {
	case <-d.release:
		return router.Reply{Status: 200, Body: []byte(`{}`)}, nil
	case <-ctx.Done():
		return router.Reply{}, router.ErrTimeout
	}
}
func (*heldDevice) Close(router.CloseReason)                 {}
func (*heldDevice) Release(router.Key) (router.Claim, error) { return router.Taken, nil }

// holdSlots takes every serving slot of holder with deliveries from caller
// to d, which holder holds for key; unblock d to end them. Each ends
// delivered.
func holdSlots(t *testing.T, caller, holder *Cluster, key router.Key, d *heldDevice) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for range holder.cfg.MaxServing {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if rep, err := caller.Deliver(ctx, key, router.Message{Mode: "notify"}); err != nil || rep.Status != 200 {
				t.Errorf("a delivery holding a slot: %v %v, want 200", rep, err)
			}
		})
		<-d.arrived // one at a time: a burst could overflow a tiny Pending
	}
	t.Cleanup(func() { d.Unblock(); wg.Wait() }) // a test that failed early
	return wg.Wait
}

// lockedBuffer collects a node's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestBusyAtOnce: with every serving slot of the node that holds a device
// taken, requests for it from another node are answered busy at once, not
// at their deadline, and each is counted once on either side; those
// holding the slots are still delivered.
func TestBusyAtOnce(t *testing.T) {
	url := startNATS(t)
	holder := newNode(t, url, func(c *Config) { c.MaxServing, c.Pending = 2, 4 })
	caller := newNode(t, url, nil)
	key := router.KeyOf([]byte(wire.NewToken()))
	d := newHeldDevice(t)
	holder.router.Bind(context.Background(), key, d)
	held := holdSlots(t, caller, holder, key, d)

	// No more at once than Pending, so that none can find the queue full.
	var wg sync.WaitGroup
	for range holder.cfg.Pending {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := caller.Deliver(ctx, key, router.Message{Mode: "notify"}); !errors.Is(err, router.ErrBusy) {
				t.Errorf("a request beyond the serving slots: %v, want %v", err, router.ErrBusy)
			}
		})
	}
	wg.Wait()
	d.Unblock()
	held()
	for _, c := range []struct {
		node               *Cluster
		name, label, value string
		want               int
	}{
		{holder, "relay_cluster_served_total", "op", "busy", holder.cfg.Pending},
		{holder, "relay_cluster_served_total", "op", "deliver", holder.cfg.MaxServing},
		{holder, "relay_cluster_dropped_total", "reason", "slow_consumer", 0},
		{caller, "relay_cluster_deliveries_total", "outcome", "busy", holder.cfg.Pending},
		{caller, "relay_cluster_deliveries_total", "outcome", "delivered", holder.cfg.MaxServing},
	} {
		if got := metric(t, c.node, c.name, c.label, c.value); got != float64(c.want) {
			t.Errorf("%s{%s=%q} = %v, want %d", c.name, c.label, c.value, got, c.want)
		}
	}
}

// TestDroppedRequestsAreCounted: a request that arrives while the pending
// queue is full is dropped by the NATS client unanswered, and counted.
// Nothing takes the queue of one here until all have arrived, so exactly
// the first waits and the others are dropped.
func TestDroppedRequestsAreCounted(t *testing.T) {
	url := startNATS(t)
	holder := join(t, url, func(c *Config) { c.Pending = 1 }, connect) // dispatched below
	caller := newNode(t, url, nil)
	key := router.KeyOf([]byte(wire.NewToken()))
	holder.router.Bind(context.Background(), key, &fakeDevice{})
	bound := holder.nc.Stats().InMsgs // the login's claim had its answer (no responders)

	const n = 4
	errs, cancel := deliverMany(caller, key, n)
	defer cancel()
	waitFor(t, "every request at the holder", func() bool { return holder.nc.Stats().InMsgs == bound+n })
	if got := metric(t, holder, "relay_cluster_dropped_total", "reason", "slow_consumer"); got != n-1 {
		t.Fatalf("relay_cluster_dropped_total = %v, want %d", got, n-1)
	}
	holder.wg.Go(holder.dispatch) // the one that waited is served
	if err := <-errs; err != nil {
		t.Fatalf("the request that waited: %v, want delivered", err)
	}
	cancel() // the dropped ones would wait for their deadline
	for range n - 1 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("a dropped request: %v, want it waiting until canceled", err)
		}
	}
	if got := metric(t, holder, "relay_cluster_dropped_total", "reason", "slow_consumer"); got != n-1 {
		t.Errorf("relay_cluster_dropped_total = %v after the queue moved again, want still %d", got, n-1)
	}
}

// TestEveryRequestIsAnsweredOrCounted: far more requests at once than a
// node with a tiny pending queue and its one serving slot taken can hold.
// However many the NATS client drops (that depends on how fast the node's
// dispatcher is scheduled), each request that reached the node is either
// answered busy, which its caller gets at once, or counted dropped, and
// those are exactly the callers left waiting.
func TestEveryRequestIsAnsweredOrCounted(t *testing.T) {
	url := startNATS(t)
	var logs lockedBuffer
	holder := newNode(t, url, func(c *Config) {
		c.MaxServing, c.Pending = 1, 1
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	caller := newNode(t, url, nil)
	key := router.KeyOf([]byte(wire.NewToken()))
	d := newHeldDevice(t)
	holder.router.Bind(context.Background(), key, d)
	bound := holder.nc.Stats().InMsgs // the login's claim had its answer (no responders)
	held := holdSlots(t, caller, holder, key, d)

	const n = 50
	errs, cancel := deliverMany(caller, key, n)
	defer cancel()
	busy := func() float64 { return metric(t, holder, "relay_cluster_served_total", "op", "busy") }
	dropped := func() float64 { return metric(t, holder, "relay_cluster_dropped_total", "reason", "slow_consumer") }
	waitFor(t, "every request at the holder answered busy or counted dropped", func() bool {
		return holder.nc.Stats().InMsgs == bound+1+n && busy()+dropped() == n
	})
	nBusy, nDropped := int(busy()), int(dropped())
	t.Logf("%d answered busy, %d dropped", nBusy, nDropped)
	for range nBusy {
		if err := <-errs; !errors.Is(err, router.ErrBusy) {
			t.Fatalf("before any deadline: %v, want %v", err, router.ErrBusy)
		}
	}
	cancel()
	for range nDropped {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("a dropped request: %v, want it waiting until canceled", err)
		}
	}
	d.Unblock()
	held()
	if got := metric(t, caller, "relay_cluster_deliveries_total", "outcome", "busy"); got != float64(nBusy) {
		t.Errorf("the caller counted %v busy, want %d", got, nBusy)
	}
	warned := strings.Contains(logs.String(), "dropped unanswered")
	if warned != (nDropped > 0) {
		t.Errorf("%d dropped, warned %v; log:\n%s", nDropped, warned, logs.String())
	}
	if strings.Contains(logs.String(), hex.EncodeToString(key[:])) {
		t.Error("the log names the device's subject")
	}
}

// TestPendingIsChecked: the pending queue's size is a positive count up to
// MaxPending.
func TestPendingIsChecked(t *testing.T) {
	for _, p := range []int{0, -1, MaxPending + 1} {
		cfg := DefaultConfig()
		cfg.URLs, cfg.Pending = []string{"nats://127.0.0.1:4222"}, p
		if _, err := New(router.New(), cfg); err == nil || !strings.Contains(err.Error(), "pending") {
			t.Errorf("pending %d: %v, want an error about it", p, err)
		}
	}
	cfg := DefaultConfig()
	cfg.URLs, cfg.Pending = []string{"nats://127.0.0.1:4222"}, MaxPending
	if err := cfg.Check(); err != nil {
		t.Errorf("pending %d: %v", MaxPending, err)
	}
}

// startNATS runs a NATS server in the process (internal/relaytest's would
// import this package through the server).
func startNATS(t *testing.T) string {
	t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv.ClientURL()
}

// outcomeDevice fails every delivery with its outcome.
type outcomeDevice struct {
	fakeDevice
	err error
}

func (d *outcomeDevice) Deliver(context.Context, router.Message) (router.Reply, error) {
	return router.Reply{}, fmt.Errorf("%w: as the test says", d.err)
}

// TestEveryOutcomeCrossesTheBus: each router outcome a device on one node
// fails with reaches the caller's node as that outcome, by its one code,
// and is counted there under that code; a node of an older release that
// still says "unavailable" is understood.
func TestEveryOutcomeCrossesTheBus(t *testing.T) {
	url := startNATS(t)
	holder, caller := newNode(t, url, nil), newNode(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, o := range router.Outcomes() {
		key := router.KeyOf([]byte(wire.NewToken()))
		holder.router.Bind(ctx, key, &outcomeDevice{err: o})
		if _, err := caller.router.Deliver(ctx, key, router.Message{Mode: "notify"}); !errors.Is(err, o) {
			t.Errorf("a device's %s across the bus: %v", o.Code(), err)
		}
		if got := metric(t, caller, "relay_cluster_deliveries_total", "outcome", o.Code()); got != 1 {
			t.Errorf("relay_cluster_deliveries_total{outcome=%q} = %v, want 1", o.Code(), got)
		}
	}

	old, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	key := router.KeyOf([]byte(wire.NewToken()))
	sub, err := old.Subscribe(caller.subject(key), func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set(hdrError, "unavailable")
		m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	old.Flush()
	if _, err := caller.router.Deliver(ctx, key, router.Message{Mode: "notify"}); !errors.Is(err, router.ErrUnavailable) {
		t.Errorf("an old node's \"unavailable\": %v, want ErrUnavailable", err)
	}
}

// deliverMany sends n webhooks for key through caller at once, each with a
// minute's deadline, and returns their results as they come; cancel ends
// those still waiting.
func deliverMany(caller *Cluster, key router.Key, n int) (<-chan error, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := caller.Deliver(ctx, key, router.Message{Mode: "notify"})
			errs <- err
		}()
	}
	return errs, cancel
}
