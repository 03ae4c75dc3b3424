package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
)

// cluster starts a NATS server and n relay nodes joined to it, sharing one
// development CA; mutate applies to every node.
func cluster(t *testing.T, n int, mutate func(*server.Config)) (*relaytest.NATS, []*relaytest.Relay) {
	t.Helper()
	nats := relaytest.StartNATS(t)
	first := relaytest.Start(t, func(c *server.Config) {
		nats.Join(c)
		if mutate != nil {
			mutate(c)
		}
	})
	nodes := []*relaytest.Relay{first}
	for range n - 1 {
		nodes = append(nodes, first.Sibling(t, nil))
	}
	return nats, nodes
}

// TestClusterDeliversAcrossNodes: a webhook to any node reaches a device on
// any other, over either transport, with the same statuses and bodies as a
// local delivery: 200 with the device's reply, 404 for a token connected
// nowhere (at once), 503 busy, 504, 502 device_gone and bad_reply.
func TestClusterDeliversAcrossNodes(t *testing.T) {
	const ack = time.Second
	_, nodes := cluster(t, 2, func(c *server.Config) {
		c.Session.MaxInflight = 1
		c.Webhook.AckTimeout = ack
	})
	a, b := nodes[0], nodes[1]
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			tok := wire.NewToken()
			a.DialWith(t, tok, echo("on-a"), tr.opt)
			status, body := b.Post(t, "notify", tok, `{"text":"hi"}`)
			var r struct{ Device, Mode, Query string }
			if json.Unmarshal(body, &r); status != 200 || r.Device != "on-a" || r.Mode != "notify" {
				t.Fatalf("webhook to the other node: %d %s", status, body)
			}
			// A custom app's name and a read cross the nodes too.
			status, body = b.Do(t, "POST", b.URL("custom", tok)+"&name=weather", `{"text":"21"}`, nil)
			if json.Unmarshal(body, &r); status != 200 || r.Mode != "custom" || r.Query != "name=weather" {
				t.Fatalf("a named custom app to the other node: %d %s", status, body)
			}
			status, body = b.Do(t, "GET", b.URL("stats", tok), ``, nil)
			if json.Unmarshal(body, &r); status != 200 || r.Mode != "stats" {
				t.Fatalf("a read to the other node: %d %s", status, body)
			}
			older := wire.NewToken()
			a.DialWith(t, older, echo("old"), device.Options{Transport: tr.opt.Transport, Version: 1})
			if s, body := b.Do(t, "POST", b.URL("custom", older)+"&name=weather", `{}`, nil); s != 501 || relaytest.ErrorCode(t, body) != "device_outdated" {
				t.Fatalf("a name for a version 1 device on the other node: %d %s, want 501 device_outdated", s, body)
			}

			// Busy and timeout: a device that holds its one message.
			slow := wire.NewToken()
			blk := newBlocker()
			a.DialWith(t, slow, blk, tr.opt)
			held := make(chan int, 1)
			go func() { s, _ := b.Post(t, "notify", slow, `{}`); held <- s }()
			<-blk.arrived
			if s, body := b.Post(t, "notify", slow, `{}`); s != 503 || relaytest.ErrorCode(t, body) != "busy" {
				t.Fatalf("second message across nodes: %d %s, want 503 busy", s, body)
			}
			if s := <-held; s != 504 {
				t.Fatalf("held message across nodes: %d, want 504", s)
			}
			close(blk.release)
		})
	}

	t.Run("unknown token", func(t *testing.T) {
		began := time.Now()
		if s, body := b.Post(t, "notify", wire.NewToken(), `{}`); s != 404 || relaytest.ErrorCode(t, body) != "no_device" {
			t.Fatalf("%d %s, want 404 no_device", s, body)
		}
		if d := time.Since(began); d >= ack {
			t.Fatalf("404 after %v: it waited instead of learning that nobody holds the token", d)
		}
	})
	t.Run("device gone", func(t *testing.T) {
		tok := wire.NewToken()
		blk := newBlocker()
		defer close(blk.release)
		c, _ := a.Dial(t, tok, blk)
		go func() { <-blk.arrived; c.Close() }()
		if s, body := b.Post(t, "notify", tok, `{}`); s != 502 || relaytest.ErrorCode(t, body) != "device_gone" {
			t.Fatalf("%d %s, want 502 device_gone", s, body)
		}
	})
	t.Run("bad reply", func(t *testing.T) {
		tok := wire.NewToken()
		c, _ := login(t, a, tok)
		done := answer(c, wire.Reply{Status: 200, Body: []byte("not json")}.Append(nil))
		if s, body := b.Post(t, "notify", tok, `{}`); s != 502 || relaytest.ErrorCode(t, body) != "bad_reply" {
			t.Fatalf("%d %s, want 502 bad_reply", s, body)
		}
		<-done
	})
	t.Run("device status and body pass through", func(t *testing.T) {
		tok := wire.NewToken()
		c, _ := login(t, a, tok)
		done := answer(c, wire.Reply{Status: 418, Body: []byte(`["teapot"]`)}.Append(nil))
		if s, body := b.Post(t, "notify", tok, `{}`); s != 418 || string(body) != `["teapot"]` {
			t.Fatalf("%d %s, want the device's 418 and body", s, body)
		}
		<-done
	})
}

// TestClusterTakeoverAndRotation: a login on one node takes the token from
// another, which closes its session as replaced; a rotation on one node
// makes the old token 404 on every node as soon as it returns, and cannot
// take a token held on another node.
func TestClusterTakeoverAndRotation(t *testing.T) {
	_, nodes := cluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	tok := wire.NewToken()
	_, servedA := a.Dial(t, tok, echo("first"))
	b.Dial(t, tok, echo("second"))
	if err := <-servedA; !errors.Is(err, device.ErrReplaced) {
		t.Fatalf("the session on a ended with %v, want replaced", err)
	}
	for _, n := range nodes {
		status, body := n.Post(t, "notify", tok, `{}`)
		var r struct{ Device string }
		if json.Unmarshal(body, &r); status != 200 || r.Device != "second" {
			t.Fatalf("after the takeover: %d %s, want the second device", status, body)
		}
	}

	// Rotation on b: the old token is gone everywhere at once.
	other := wire.NewToken()
	a.Dial(t, other, echo("other"))
	c, _ := b.Dial(t, wire.NewToken(), echo("rotating"))
	old := wire.NewToken()
	if err := c.Rotate(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	next := wire.NewToken()
	if err := c.Rotate(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if s, _ := n.Post(t, "notify", old, `{}`); s != 404 {
			t.Fatalf("old token after the rotation: %d, want 404", s)
		}
		if s, _ := n.Post(t, "notify", next, `{}`); s != 200 {
			t.Fatalf("new token after the rotation: %d, want 200", s)
		}
	}
	var re *device.RefusedError
	if err := c.Rotate(context.Background(), other); !errors.As(err, &re) || re.Reason != wire.ReasonInUse {
		t.Fatalf("rotation to a token held on another node: %v, want token_in_use", err)
	}
}

// TestClusterFullNodeTakesNoToken: a login that a node refuses relay_full
// takes nothing from the node that holds its token: the session there
// stays, and every node reaches it. (The claim came before the cap check,
// and closed the session on the other node as replaced, for a login that
// was then refused: the token was held nowhere.)
func TestClusterFullNodeTakesNoToken(t *testing.T) {
	_, nodes := cluster(t, 2, func(c *server.Config) { c.Session.MaxDevices = 1 })
	a, b := nodes[0], nodes[1]
	b.Dial(t, wire.NewToken(), echo("fills b"))
	tok := wire.NewToken()
	_, servedA := a.Dial(t, tok, echo("on a"))
	_, err := device.Dial(context.Background(), b.Addr, tok, device.Options{TLS: b.TLS})
	var re *device.RefusedError
	if !errors.As(err, &re) || re.Reason != wire.ReasonFull {
		t.Fatalf("a login on the full node: %v, want relay_full", err)
	}
	for _, n := range nodes {
		status, body := n.Post(t, "notify", tok, `{}`)
		var r struct{ Device string }
		if json.Unmarshal(body, &r); status != 200 || r.Device != "on a" {
			t.Fatalf("after the refused login: %d %s, want the device on a", status, body)
		}
	}
	select {
	case err := <-servedA:
		t.Fatalf("the session on a ended: %v", err)
	default:
	}
}

// TestClusterCloneFightIsDamped: two devices with one token on two nodes
// take it from each other a few times, then the newer login is refused and
// the incumbent stays, as on one node.
func TestClusterCloneFightIsDamped(t *testing.T) {
	_, nodes := cluster(t, 2, func(c *server.Config) {
		c.Session.Takeovers.Burst = 2
	})
	tok := wire.NewToken()
	opt := func(n *relaytest.Relay) device.Options { return device.Options{TLS: n.TLS} }
	var refused *device.RefusedError
	for i := 0; i < 10; i++ {
		n := nodes[i%2]
		c, err := device.Dial(context.Background(), n.Addr, tok, opt(n))
		if errors.As(err, &refused) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- c.Serve(context.Background(), echo("incumbent")) }()
		defer func() { c.Close(); <-served }()
	}
	if refused == nil || refused.Reason != wire.ReasonLimited {
		t.Fatalf("ten alternating logins with one token: refused %v, want rate_limited", refused)
	}
	// The incumbent stays, and every node reaches it.
	for _, n := range nodes {
		if s, body := n.Post(t, "notify", tok, `{}`); s != 200 {
			t.Fatalf("webhook after the fight: %d %s, want the incumbent's 200", s, body)
		}
	}
}

// TestClusterNodeLoss: when a node dies, webhooks for its devices get a
// definite answer at once from the others (404), not a 504 after the ack
// timeout.
func TestClusterNodeLoss(t *testing.T) {
	_, nodes := cluster(t, 2, func(c *server.Config) { c.Webhook.AckTimeout = time.Minute })
	a, b := nodes[0], nodes[1]
	tok := wire.NewToken()
	a.Dial(t, tok, echo("a"))
	if s, _ := b.Post(t, "notify", tok, `{}`); s != 200 {
		t.Fatalf("before: %d", s)
	}
	a.Kill()
	began := time.Now()
	if s, body := b.Post(t, "notify", tok, `{}`); s != 404 {
		t.Fatalf("after the node died: %d %s, want 404", s, body)
	}
	t.Logf("404 %v after the node died", time.Since(began))
}

// TestClusterNATSLossAndReturn: without NATS a node serves its own devices,
// answers webhooks for the others' with 503 cluster_unavailable at once, and
// reports not-ready if configured to; a node starts while NATS is down; when
// NATS is back every node rejoins with its subscriptions, without a restart.
func TestClusterNATSLossAndReturn(t *testing.T) {
	nats, nodes := cluster(t, 2, func(c *server.Config) {
		c.Webhook.AckTimeout = time.Minute
		c.ReadyNeedsCluster = true
	})
	a, b := nodes[0], nodes[1]
	onA, onB := wire.NewToken(), wire.NewToken()
	a.Dial(t, onA, echo("a"))
	b.Dial(t, onB, echo("b"))
	if s, _ := b.Post(t, "notify", onA, `{}`); s != 200 {
		t.Fatalf("before: %d", s)
	}

	nats.Stop()
	relaytest.WaitFor(t, func() bool { return metric(t, b, "relay_cluster_connected") == 0 })
	if s, body := b.Post(t, "notify", onA, `{}`); s != 503 || relaytest.ErrorCode(t, body) != "cluster_unavailable" {
		t.Fatalf("remote token without NATS: %d %s, want 503 cluster_unavailable", s, body)
	}
	if s, _ := b.Post(t, "notify", onB, `{}`); s != 200 {
		t.Fatalf("local token without NATS: %d, want 200", s)
	}
	if s := ready(t, b); s != 503 {
		t.Fatalf("/readyz without NATS: %d, want 503 (ReadyNeedsCluster)", s)
	}
	// A node that starts now starts, and serves its own devices.
	c := a.Sibling(t, nil)
	onC := wire.NewToken()
	c.Dial(t, onC, echo("c"))
	if s, _ := c.Post(t, "notify", onC, `{}`); s != 200 {
		t.Fatalf("node started without NATS, local token: %d", s)
	}

	nats.Restart(t)
	for _, n := range []*relaytest.Relay{a, b, c} {
		relaytest.WaitFor(t, func() bool { return metric(t, n, "relay_cluster_connected") == 1 })
	}
	for _, tc := range []struct {
		from *relaytest.Relay
		tok  string
	}{{b, onA}, {a, onB}, {a, onC}, {c, onA}} {
		if s, body := tc.from.Post(t, "notify", tc.tok, `{}`); s != 200 {
			t.Fatalf("after NATS came back: %d %s, want 200", s, body)
		}
	}
	if s := ready(t, b); s != 200 {
		t.Fatalf("/readyz with NATS back: %d", s)
	}
}

func ready(t *testing.T, e *relaytest.Relay) int {
	t.Helper()
	resp, err := http.Get("http://" + e.AdminAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestClusterDrainMovesDevicesWithoutAGap: a node of a cluster drains while
// webhooks flow to the others; its devices move to them, logging in there
// before they leave (make-before-break), and every webhook is answered 200.
func TestClusterDrainMovesDevicesWithoutAGap(t *testing.T) {
	const devices = 12
	_, nodes := cluster(t, 3, func(c *server.Config) {
		c.ReconnectSpread = 500 * time.Millisecond
		relaytest.NoLimits(c)
	})
	addrs := nodes[0].Addr + "," + nodes[1].Addr + "," + nodes[2].Addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var agents sync.WaitGroup
	defer agents.Wait()
	defer cancel()
	tokens := make([]string, devices)
	for i := range devices {
		store := device.FileStore{Path: filepath.Join(t.TempDir(), "token")}
		tok, err := store.Load()
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = tok
		ag := &device.Agent{
			Addr:    addrs, // each starts at a random node
			Options: device.Options{TLS: nodes[0].TLS, Transport: transport.Kind(i % 2)},
			Handler: echo(fmt.Sprint(i)),
			Tokens:  store,
			Backoff: device.Backoff{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		}
		agents.Go(func() { ag.Run(ctx) })
	}
	connected := func(nodes ...*relaytest.Relay) int {
		n := 0
		for _, e := range nodes {
			n += e.Router().Len()
		}
		return n
	}
	relaytest.WaitFor(t, func() bool { return connected(nodes...) == devices })
	// Drain the busiest node; callers use the other two.
	slices.SortFunc(nodes, func(x, y *relaytest.Relay) int { return y.Router().Len() - x.Router().Len() })
	a, b, c := nodes[0], nodes[1], nodes[2]
	moving := a.Router().Len()

	var mu sync.Mutex
	outcomes := map[string]int{}
	stop := make(chan struct{})
	var callers sync.WaitGroup
	for w := range 4 {
		callers.Go(func() {
			to := []*relaytest.Relay{b, c}[w%2]
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := tokens[(w+i)%devices]
				s, body := to.Post(t, "notify", tok, `{}`)
				key := fmt.Sprint(s)
				if s != 200 {
					key += " " + relaytest.ErrorCode(t, body)
				}
				mu.Lock()
				outcomes[key]++
				mu.Unlock()
			}
		})
	}
	a.Stop() // drains: GOAWAY, devices move, a exits
	relaytest.WaitFor(t, func() bool { return connected(b, c) == devices })
	close(stop)
	callers.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("webhooks while %d devices moved: %v", moving, outcomes)
	for k, n := range outcomes {
		if k != "200" {
			t.Errorf("%d webhooks answered %s", n, k)
		}
	}
	if outcomes["200"] == 0 {
		t.Fatal("no webhook was sent during the drain")
	}
	if n := metric(t, b, "relay_moves_total") + metric(t, c, "relay_moves_total"); n != 0 {
		t.Errorf("moves counted on the surviving nodes: %v; they belong to the node that drained", n)
	}
}
