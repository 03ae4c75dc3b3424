package loadtest

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func TestFrontends(t *testing.T) {
	f := newFrontends("a:1", "b:2", "c:3")
	seen := map[int]int{}
	for range 3000 {
		seen[f.pick()]++
	}
	for n := range 3 {
		if seen[n] < 800 {
			t.Errorf("node %d picked %d of 3000 times, want about 1000", n, seen[n])
		}
	}
	f.setReady(1, false)
	for range 1000 {
		if f.pick() == 1 {
			t.Fatal("a node out of rotation was picked")
		}
	}
	f.setReady(2, false)
	for range 100 {
		if n := f.pick(); n != 0 {
			t.Fatalf("picked %d with only node 0 ready", n)
		}
	}
	f.setReady(1, true)
	f.setReady(2, true)
	if r := *f.ready.Load(); !slices.Equal(r, []int{0, 1, 2}) {
		t.Fatalf("ready %v after putting every node back", r)
	}

	// settle waits for the node's webhooks, and no longer than it may.
	f.pending[1].Add(2)
	go func() {
		time.Sleep(20 * time.Millisecond)
		f.pending[1].Add(-2)
	}()
	if !f.settle(t.Context(), 1, 5*time.Second) {
		t.Fatal("settle gave up on webhooks that were answered")
	}
	f.pending[2].Add(1)
	if f.settle(t.Context(), 2, 30*time.Millisecond) {
		t.Fatal("settle reported none left with one unanswered")
	}
}

func TestRoute(t *testing.T) {
	for _, tc := range [][2]int{{0, 0}, {2, -1}, {0, 7}, {15, 3}} {
		w, d, ok := unroute(route(tc[0], tc[1]))
		if !ok || w != tc[0] || d != tc[1] {
			t.Errorf("route(%d, %d) comes back as %d, %d, %v", tc[0], tc[1], w, d, ok)
		}
	}
	if _, _, ok := unroute(0); ok {
		t.Error("an unset word unroutes")
	}
	var r routing
	r.nodes.set(42, route(1, 2))
	r.devs.set(42, 7+1)
	if w, dev, dn, ok := r.get(42); !ok || w != 1 || dev != 7 || dn != 2 {
		t.Errorf("routing.get = %d %d %d %v", w, dev, dn, ok)
	}
}

// Each device has an order of its own: a draining node's devices spread
// over every other node, and the order visits every node.
func TestSuccessors(t *testing.T) {
	const nodes = 3
	next := map[int]int{}
	for i := 0; i < 3000; i += nodes { // the devices that start on node 0
		succ := successors(i, nodes)
		n, seen := 0, map[int]bool{}
		for range nodes {
			seen[n] = true
			n = succ[n]
		}
		if n != 0 || len(seen) != nodes {
			t.Fatalf("device %d: order %v is not one cycle over the nodes", i, succ)
		}
		if succ[0] == 0 {
			t.Fatalf("device %d moves from node 0 to node 0", i)
		}
		next[succ[0]]++
	}
	if next[1] < 400 || next[2] < 400 {
		t.Errorf("node 0's devices move to %v: want both other nodes", next)
	}
	if s := successors(5, 1); !slices.Equal(s, []int{0}) {
		t.Errorf("one node: %v", s)
	}
}

func TestFailureKey(t *testing.T) {
	for _, tc := range []struct {
		r    vegeta.Result
		want string
	}{
		{vegeta.Result{Code: 404, Body: []byte(`{"error":"device not connected","code":"no_device"}`)}, "404 no_device"},
		{vegeta.Result{Code: 503, Body: []byte(`{"error":"relay is restarting","code":"draining"}`)}, "503 draining"},
		{vegeta.Result{Code: 405, Body: []byte(`not json`)}, "405"},
		{vegeta.Result{Code: 0, Error: `Post "https://x/cloud": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`}, "0 timeout"},
		{vegeta.Result{Code: 0, Error: "dial tcp 127.0.0.1:1: connect: connection refused"}, "0 refused"},
		{vegeta.Result{Code: 0, Error: "read: connection reset by peer"}, "0 reset"},
		{vegeta.Result{Code: 0, Error: "unexpected EOF"}, "0 eof"},
		{vegeta.Result{Code: 0, Error: "something else"}, "0 error"},
	} {
		if got := failureKey(&tc.r); got != tc.want {
			t.Errorf("failureKey(%d %q %q) = %q, want %q", tc.r.Code, tc.r.Body, tc.r.Error, got, tc.want)
		}
	}
}

func TestCrossNode(t *testing.T) {
	var r routing
	var rs []vegeta.Result
	add := func(id uint64, code uint16, webhook, devNode int, lat time.Duration) {
		r.nodes.set(id, route(webhook, devNode))
		rs = append(rs, vegeta.Result{Code: code, Latency: lat, URL: "https://h:1/cloud?mode=notify&token=T&lt=" + itoa(id)})
	}
	for i := range uint64(60) {
		add(i, 200, 0, 0, time.Millisecond) // local
	}
	for i := uint64(60); i < 100; i++ {
		add(i, 200, 0, 1, 3*time.Millisecond) // cross-node
	}
	add(100, 200, 1, -1, time.Millisecond) // device between sessions
	add(101, 404, 0, 1, time.Millisecond)  // not a delivery
	var c ClusterStats
	crossNode(&c, rs, &r)
	if c.Local != 60 || c.CrossNode != 40 || c.Unknown != 1 {
		t.Fatalf("local %d, cross %d, unknown %d; want 60, 40, 1", c.Local, c.CrossNode, c.Unknown)
	}
	if share := c.CrossNodeShare; share < 0.39 || share > 0.40 {
		t.Errorf("share %v, want 40/101", share)
	}
	if c.LocalLatency.P99 != 1 || c.CrossNodeLatency.P50 != 3 {
		t.Errorf("latency local %+v, cross %+v", c.LocalLatency, c.CrossNodeLatency)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestExplain(t *testing.T) {
	sent := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	at := func(s float64) time.Time { return sent.Add(time.Duration(s * float64(time.Second))) }
	evs := []event{
		{at: at(-5), dev: 1, node: 0, kind: evUp},       // too early to matter
		{at: at(-0.5), dev: 1, node: 0, kind: evGoAway}, // the move under way
		{at: at(0.1), dev: 1, node: 1, kind: evMoved},
		{at: at(0.1), dev: 1, node: 0, kind: evDown},
	}
	lines, churn := explain(evs, sent, at(0.2))
	if churn || len(lines) != 3 || !strings.Contains(lines[0], "-0.500 s GOAWAY (node 0)") {
		t.Errorf("a move: churn %v, %q", churn, lines)
	}
	evs = append(evs, event{at: at(0.15), dev: 1, node: 1, kind: evHangup})
	if _, churn := explain(evs, sent, at(0.2)); !churn {
		t.Error("a hang-up while the webhook was in flight is not churn")
	}
	if _, churn := explain(evs, sent, at(0.12)); churn {
		t.Error("a hang-up after the answer counts as churn")
	}
	// Before the webhook: churn's only while the device is still away.
	away := []event{{at: at(-1.5), kind: evHangup}, {at: at(-1.5), kind: evDown}}
	if _, churn := explain(away, sent, at(0.1)); !churn {
		t.Error("a device churn hung up and not back is not churn")
	}
	back := append(away, event{at: at(-1.2), kind: evUp})
	if _, churn := explain(back, sent, at(0.1)); churn {
		t.Error("a device back from churn before the webhook counts as churn")
	}
	if _, churn := explain([]event{{at: at(-0.1), kind: evRotating}}, sent, at(0.1)); !churn {
		t.Error("a rotation under way is not churn")
	}
	if _, churn := explain([]event{{at: at(-0.2), kind: evRotating}, {at: at(-0.1), kind: evRotated}}, sent, at(0.1)); churn {
		t.Error("a rotation done before the webhook counts as churn")
	}
}

func TestSoakStats(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	restarts := []RestartStats{
		{Node: 0, At: at(2), SettleS: 0.5, OutS: 2},
		{Node: 1, At: at(6), OutS: 1},
	}
	var rs []vegeta.Result
	for i := range 100 { // 10 a second for 10 s
		rs = append(rs, vegeta.Result{Code: 200, Timestamp: at(float64(i) / 10), Latency: time.Duration(1+i%5) * time.Millisecond})
	}
	var r routing
	r.nodes.set(1, route(1, 0))
	r.devs.set(1, 3+1)
	failed := []failure{
		{at: at(6.5), key: "502 device_gone", id: 2, ok: true},
		{at: at(3), key: "404 no_device", id: 1, ok: true, lat: 5 * time.Millisecond},
		{at: at(3.5), key: "404 no_device"},
		{at: at(9), key: "404 no_device", id: 1, ok: true},
	}
	events := map[int32][]event{3: {{at: at(3.001), dev: 3, node: 0, kind: evHangup}, {at: at(3.1), dev: 3, node: 0, kind: evUp}}}
	ss := soakStats(restarts, rs, failed, &r, events, start, 10*time.Second)

	r0, r1 := ss.Restarts[0], ss.Restarts[1]
	if r0.Requests != 20 || r1.Requests != 10 {
		t.Errorf("requests in the windows: %d, %d; want 20, 10", r0.Requests, r1.Requests)
	}
	if r0.NonOK != 2 || r0.NonOKByCode["404 no_device"] != 2 || r0.NonOKChurn != 1 || r1.NonOK != 1 || r1.NonOKByCode["502 device_gone"] != 1 {
		t.Errorf("windows: %+v, %+v", r0, r1)
	}
	if s := r0.Samples[0]; s.Device != 3 || s.WebhookNode != 1 || s.DeviceNode != 0 || !s.Churn || s.AfterTermS < 0.49 || s.AfterTermS > 0.51 || len(s.Events) != 2 {
		t.Errorf("sample %+v", s)
	}
	if ss.OutsideNonOK != 1 || ss.OutsideS < 6.99 || ss.OutsideS > 7.01 || len(ss.OutsideSamples) != 1 {
		t.Errorf("outside: %d in %.2f s, samples %v", ss.OutsideNonOK, ss.OutsideS, ss.OutsideSamples)
	}
	if len(ss.Timeline) != 11 || ss.Timeline[3].Requests != 10 || ss.Timeline[3].NonOK != 0 || ss.Timeline[0].P99MS != 5 {
		t.Errorf("timeline %+v", ss.Timeline[:4])
	}
}

// A node that is restarted is several processes; its figures cover them.
func TestProcSeries(t *testing.T) {
	a, err := StartSampler(os.Getpid(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	p := newSeries(a)
	defer p.stop()
	mk := p.mark()
	burn(50 * time.Millisecond)
	b, err := StartSampler(os.Getpid(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	p.add(b)
	burn(50 * time.Millisecond)
	st := p.since(mk)
	if st.CPUPercent <= 0 || st.Samples < 4 || st.RSSMB <= 0 || st.RSSMaxMB < st.RSSMB {
		t.Errorf("over two processes: %+v", st)
	}
}

func TestConfigNodes(t *testing.T) {
	base := Config{RelayBin: "relay"}
	for _, tc := range []struct {
		c   Config
		err string
	}{
		{Config{Scenario: ScenarioFanin, Nodes: 3}, "only the cluster and soak"},
		{Config{Scenario: ScenarioSoak, Nodes: 1}, "at least 2"},
		{Config{Scenario: ScenarioCluster, Target: "h:1"}, "--target"},
	} {
		tc.c.RelayBin = base.RelayBin
		if _, err := tc.c.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.err)
		}
	}
	c, err := Config{Scenario: ScenarioSoak, RelayBin: "relay"}.withDefaults()
	if err != nil || c.Nodes != DefaultNodes || c.RestartEvery != DefaultRestartEvery || c.Duration != 3*DefaultRestartEvery {
		t.Errorf("soak defaults: %d nodes, every %v, for %v (%v)", c.Nodes, c.RestartEvery, c.Duration, err)
	}
	c, _ = Config{Scenario: ScenarioSoak, RelayBin: "relay", ChurnReconnect: -1}.withDefaults()
	if c.ChurnReconnect != 0 || c.ChurnRotate != DefaultChurnRotate {
		t.Errorf("churn %v/%v: want none and the default", c.ChurnReconnect, c.ChurnRotate)
	}
}

// The NATS server as the cluster scenarios run it: this binary in a process
// of its own.
func TestNATSProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestProcHelper$", "--"}, NATSArgs("127.0.0.1:0")...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=nats")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := StartNATS(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Addr, "nats://127.0.0.1:") || p.PID == 0 {
		t.Errorf("NATS at %q, pid %d", p.Addr, p.PID)
	}
	nc, err := nats.Connect(p.Addr)
	if err != nil {
		p.Stop()
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync("x")
	if err == nil {
		err = nc.Publish("x", []byte("hi"))
	}
	if err == nil {
		_, err = sub.NextMsg(5 * time.Second)
	}
	nc.Close()
	if err != nil {
		t.Errorf("round trip through the NATS process: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v, want a clean exit", err)
	}
	if code := natsMain([]string{NATSFlag}, nil, os.Stderr, os.Stderr); code != 2 {
		t.Errorf("usage: exit %d", code)
	}
}

func TestStopTimeout(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, relayStopTimeout},
		{[]string{"relay", "--drain-timeout", "15s"}, 20 * time.Second},
		{[]string{"relay", "--drain-timeout", "15s", "--drain-timeout=1m"}, 65 * time.Second},
		{[]string{"relay", "-drain-timeout=2s"}, 7 * time.Second},
		{[]string{"relay", "--drain-timeout"}, relayStopTimeout},
	} {
		if got := stopTimeout(tc.args); got != tc.want {
			t.Errorf("stopTimeout(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
