package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// buildCommands builds the relay and the loadtest binary (the baseline
// server's process) into a temporary directory, as `make loadtest` does:
// the relay in its own module (the repository's root), with the versions
// it ships with, and the loadtest binary in this one.
func buildCommands(t *testing.T) (relay, loadtest string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	start := time.Now()
	for _, b := range []struct{ module, pkg string }{{"..", "./cmd/relay"}, {".", "./cmd/loadtest"}} {
		cmd := exec.Command(goBin, "build", "-o", dir+string(filepath.Separator), b.pkg)
		cmd.Dir = b.module
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s in %s: %v\n%s", b.pkg, b.module, err, out)
		}
	}
	t.Logf("built the relay and loadtest in %v", time.Since(start).Round(time.Millisecond))
	return filepath.Join(dir, "relay"), filepath.Join(dir, "loadtest")
}

// TestSmoke runs the suite for real on a small scale, so that it cannot
// rot: a relay process, 200 devices (some over WebTransport, some over
// WebSocket), 300
// webhooks/s for 3 s, the baseline in its own process, and the report.
// Every webhook must be answered 200 and delivered exactly once.
func TestSmoke(t *testing.T) {
	relay, loadtest := buildCommands(t)
	out := filepath.Join(t.TempDir(), "out")
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{
		Scenario:          ScenarioFanin,
		Devices:           200,
		WebTransportShare: 0.2,
		WebSocketShare:    0.2,
		Rate:              300,
		Duration:          3 * time.Second,
		Out:               out,
		RelayBin:          relay,
		Baseline:          true,
		BaselineBin:       loadtest,
		Command:           "go test -C loadtest -run TestSmoke",
	}
	start := time.Now()
	s, err := Run(ctx, cfg, &logs)
	t.Logf("run took %v; its log:\n%s", time.Since(start).Round(time.Millisecond), logs.String())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pass {
		// A busy CI machine may fail the error budget; accounting never.
		t.Errorf("run failed: %q", s.Failures)
	}
	if s.Lost+s.Duplicated+s.Misrouted != 0 {
		t.Errorf("lost %d, duplicated %d, misrouted %d", s.Lost, s.Duplicated, s.Misrouted)
	}
	if s.Requests < 800 || s.StatusCounts["200"] != s.Requests || s.Delivered != s.Requests {
		t.Errorf("requests %d, status %v, delivered %d: want ~900, all 200 and delivered", s.Requests, s.StatusCounts, s.Delivered)
	}
	if s.Connected != 200 || s.Transport != "mixed" || s.Connect == nil || s.Connect.Failed != 0 {
		t.Errorf("swarm: %d connected over %s, connect %+v", s.Connected, s.Transport, s.Connect)
	}
	if s.Relay.PID == 0 || s.Relay.Samples < 2 || s.RelayRSSMB <= 0 {
		t.Errorf("relay not sampled: %+v", s.Relay)
	}
	// Each transport's part: its devices, and the webhooks sent to them,
	// which add up to the run's.
	var sum uint64
	for i, want := range []struct {
		transport string
		devices   int
	}{{TransportQUIC, 120}, {TransportWebTransport, 40}, {TransportWebSocket, 40}} {
		if i >= len(s.ByTransport) {
			t.Fatalf("by transport: %+v; want quic, webtransport, websocket", s.ByTransport)
		}
		bt := s.ByTransport[i]
		if bt.Transport != want.transport || bt.Devices != want.devices || bt.Connected != want.devices ||
			bt.ConnectP50MS <= 0 || bt.Webhooks == 0 || bt.OK != bt.Webhooks || bt.Latency.P50 <= 0 || bt.Latency.P99 < bt.Latency.P50 {
			t.Errorf("by transport %d: %+v; want %s with %d devices, all connected, webhooks all 2xx", i, bt, want.transport, want.devices)
		}
		sum += bt.Webhooks
	}
	if sum != s.Requests {
		t.Errorf("the transports' webhooks add up to %d; the run sent %d", sum, s.Requests)
	}
	if b := s.Baseline; b == nil || b.Requests < 800 || b.Process == nil || b.Process.PID == s.Relay.PID {
		t.Errorf("baseline: %+v", b)
	}
	if s.Latency.P50 <= 0 || s.Latency.P99 < s.Latency.P50 {
		t.Errorf("latency %+v", s.Latency)
	}

	for _, f := range []string{SummaryFile, ReportFile, ChartFile, PlotFile} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if back.Requests != s.Requests || back.Delivered != s.Delivered || back.Scenario != ScenarioFanin || back.Pass != s.Pass {
		t.Errorf("summary.json disagrees with the Summary: %+v", back)
	}
	if report, err := os.ReadFile(filepath.Join(out, ReportFile)); err != nil || !strings.Contains(string(report), "## By transport") {
		t.Errorf("report.md has no By transport section (%v)", err)
	}
	if !strings.Contains(logs.String(), "200/200 devices connected") || !strings.Contains(logs.String(), "40 WebTransport, 40 WebSocket") {
		t.Errorf("no connect line with 40 devices on each of WebTransport and WebSocket in the log")
	}
}

// TestSmokeCluster runs the cluster scenario on a small scale: a NATS
// process, 2 relay nodes, 40 devices, 100 webhooks/s for 3 s. Every webhook
// must be answered 200 and delivered exactly once, some locally and some
// across nodes, and every process must be sampled.
func TestSmokeCluster(t *testing.T) {
	relay, loadtest := buildCommands(t)
	out := filepath.Join(t.TempDir(), "out")
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Run(ctx, Config{
		Scenario:          ScenarioCluster,
		Nodes:             2,
		Devices:           40,
		WebTransportShare: 0.25,
		Rate:              100,
		Duration:          3 * time.Second,
		Out:               out,
		RelayBin:          relay,
		BaselineBin:       loadtest,
		Command:           "go test -C loadtest -run TestSmokeCluster",
	}, &logs)
	t.Logf("its log:\n%s", logs.String())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pass || s.Lost+s.Duplicated+s.Misrouted != 0 {
		t.Errorf("run failed: %q", s.Failures)
	}
	if s.Requests < 250 || s.StatusCounts["200"] != s.Requests || s.Delivered != s.Requests {
		t.Errorf("requests %d, status %v, delivered %d: want ~300, all 200 and delivered", s.Requests, s.StatusCounts, s.Delivered)
	}
	c := s.Cluster
	if c == nil || len(c.Nodes) != 2 {
		t.Fatalf("cluster stats %+v", c)
	}
	if c.Local == 0 || c.CrossNode == 0 || c.Local+c.CrossNode+c.Unknown != s.Delivered || c.CrossNodeShare < 0.2 || c.CrossNodeShare > 0.8 {
		t.Errorf("local %d, cross-node %d (%.2f), unknown %d of %d delivered", c.Local, c.CrossNode, c.CrossNodeShare, c.Unknown, s.Delivered)
	}
	if c.LocalLatency.P50 <= 0 || c.CrossNodeLatency.P99 <= 0 {
		t.Errorf("latency local %+v, cross-node %+v", c.LocalLatency, c.CrossNodeLatency)
	}
	var sent uint64
	for _, n := range c.Nodes {
		sent += n.Webhooks
		if n.Devices != 20 || n.Process.PID == 0 || n.Process.Samples < 2 || len(n.PIDs) != 1 {
			t.Errorf("node %+v", n)
		}
		if st, err := os.Stat(filepath.Join(out, fmt.Sprintf(NodeLogFile, n.Node))); err != nil || st.Size() == 0 {
			t.Errorf("node %d's log: %v", n.Node, err)
		}
	}
	if sent != s.Requests {
		t.Errorf("the nodes were sent %d webhooks of %d", sent, s.Requests)
	}
	if c.NATS.PID == 0 || c.NATS.Samples < 2 || c.NATS.PID == c.Nodes[0].Process.PID {
		t.Errorf("NATS not sampled as its own process: %+v", c.NATS)
	}
	md, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"## Cluster", "Cross-node: device on another node", "## Answers other than 2xx"} {
		if !strings.Contains(string(md), w) {
			t.Errorf("report.md lacks %q", w)
		}
	}
}

// TestSmokeSoak runs the soak scenario with one restart: 2 nodes, 20
// devices, 50 webhooks/s for 4 s, node 0 restarted at 2 s. Every webhook
// must be answered (churn may make some 404), every 200 delivered exactly
// once, and node 0's devices must move and the node come back.
func TestSmokeSoak(t *testing.T) {
	relay, loadtest := buildCommands(t)
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	s, err := Run(ctx, Config{
		Scenario:     ScenarioSoak,
		Nodes:        2,
		Devices:      20,
		Rate:         50,
		Duration:     4 * time.Second,
		RestartEvery: 4 * time.Second,
		// Devices move within half a second, not the soak's 5 s.
		RelayArgs:   []string{"--reconnect-spread=500ms"},
		RelayBin:    relay,
		BaselineBin: loadtest,
		Command:     "go test -C loadtest -run TestSmokeSoak",
	}, &logs)
	t.Logf("run took %v; its log:\n%s", time.Since(start).Round(time.Millisecond), logs.String())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pass || s.Lost+s.Duplicated+s.Misrouted != 0 || s.StatusCounts["0"] != 0 {
		t.Errorf("run failed: %q (status %v)", s.Failures, s.StatusCounts)
	}
	if s.Requests < 150 || s.Delivered+s.Late < s.StatusCounts["200"] {
		t.Errorf("requests %d, status %v, delivered %d", s.Requests, s.StatusCounts, s.Delivered)
	}
	if s.Soak == nil || len(s.Soak.Restarts) != 1 {
		t.Fatalf("soak: %+v", s.Soak)
	}
	r := s.Soak.Restarts[0]
	if r.Node != 0 || r.Error != "" || r.PID == 0 || r.Devices == 0 || r.Moved == 0 || r.AtS < 1.5 || r.AtS > 3 {
		t.Errorf("restart %+v", r)
	}
	if c := s.Cluster; c == nil || len(c.Nodes[0].PIDs) != 2 || c.Moves == 0 {
		t.Errorf("cluster after the restart: %+v", c)
	}
	if s.Churn == nil || len(s.Soak.Timeline) < 4 {
		t.Errorf("churn %+v, timeline %d seconds", s.Churn, len(s.Soak.Timeline))
	}
}

// TestSmokeFloors runs fanin with --floors on a small scale: the relay, then
// floor-quic and the baseline, each in a process of its own, 100 devices,
// 200 webhooks/s for 2 s. Every server must have its row with the figures
// its kind can have, and the relay its overhead over floor-quic. With 2
// CPUs it is pinned too, and every server must be on the servers' CPU.
func TestSmokeFloors(t *testing.T) {
	relay, loadtest := buildCommands(t)
	allowed, _ := processCPUs(os.Getpid())
	pin := len(allowed) >= 2
	if !pin {
		t.Logf("this process may run on CPUs %v only: running unpinned, the placement is not checked", allowed)
	}
	out := filepath.Join(t.TempDir(), "out")
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	s, err := Run(ctx, Config{
		Scenario:    ScenarioFanin,
		Devices:     100,
		Rate:        200,
		Duration:    2 * time.Second,
		Out:         out,
		RelayBin:    relay,
		Baseline:    true,
		BaselineBin: loadtest,
		Floors:      true,
		Pin:         pin,
		Command:     "go test -C loadtest -run TestSmokeFloors",
	}, &logs)
	t.Logf("run took %v; its log:\n%s", time.Since(start).Round(time.Millisecond), logs.String())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pass || s.Lost+s.Duplicated+s.Misrouted != 0 {
		t.Errorf("run failed: %q", s.Failures)
	}
	cs := s.Costs
	if cs == nil {
		t.Fatal("no Summary.Costs with --floors")
	}
	var names []string
	for _, c := range cs.Servers {
		names = append(names, c.Server)
	}
	if got := strings.Join(names, " "); got != "relay floor-quic baseline" {
		t.Fatalf("cost rows %q, want relay floor-quic baseline", got)
	}
	for _, c := range cs.Servers[:2] {
		if !c.Sampled || c.PID == 0 || c.Devices != 100 || c.Transport != "quic" || c.HandshakesPS <= 0 ||
			c.RSSBeforeMB <= 0 || c.RSSAfterMB <= c.RSSBeforeMB || c.RSSPerDeviceKiB <= 0 ||
			c.Webhooks < 300 || c.CPUS <= 0 || c.CPUPerWebhookUS <= 0 || c.Latency.P50 <= 0 ||
			c.Lost+c.Duplicated+c.Misrouted != 0 {
			t.Errorf("%s: %+v", c.Server, c)
		}
	}
	if b := cs.Servers[2]; !b.Sampled || b.PID == 0 || b.Devices != 0 || b.Webhooks < 300 || b.CPUPerWebhookUS <= 0 || b.Latency.P50 <= 0 {
		t.Errorf("baseline: %+v", b)
	}
	if cs.Floor == nil || cs.Floor.Server != "floor-quic" || cs.Overhead == nil ||
		cs.Overhead.CPURatio <= 0 || cs.Overhead.RSSRatio <= 0 || cs.Overhead.HandshakesRatio <= 0 {
		t.Errorf("floor %+v, overhead %+v", cs.Floor, cs.Overhead)
	}
	if pin {
		want := map[string]bool{"relay": true, "floor-quic": true, "baseline": true}
		if s.Pin == nil {
			t.Fatal("pinned run without Summary.Pin")
		}
		for _, pp := range s.Pin.Processes {
			cpu := s.Pin.ServerCPU
			if pp.PID == os.Getpid() {
				cpu = s.Pin.GeneratorCPU
			}
			if !slices.Equal(pp.CPUs, []int{cpu}) {
				t.Errorf("%s pid %d on %v, want CPU %d", pp.Name, pp.PID, pp.CPUs, cpu)
			}
			delete(want, pp.Name)
		}
		if len(want) > 0 {
			t.Errorf("not pinned: %v (placement %+v)", want, s.Pin)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"## Relay vs its floors", "| floor-quic | quic | 100 |", "relay overhead (relay − floor-quic): CPU", "CPU placement: "} {
		if !strings.Contains(string(md), w) {
			t.Errorf("report.md lacks %q", w)
		}
	}
}

// TestSmokeIdleWebSocketFloor runs idle over WebSocket with --floors: the
// relay, then floor-websocket, each in a process of its own with 60 idle
// WebSocket devices. Both must have their RSS per device, and the relay
// its overhead over floor-websocket.
func TestSmokeIdleWebSocketFloor(t *testing.T) {
	relay, loadtest := buildCommands(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var logs bytes.Buffer
	s, err := Run(ctx, Config{
		Scenario:       ScenarioIdle,
		Devices:        60,
		WebSocketShare: 1,
		IdleSettle:     time.Second,
		RelayBin:       relay,
		BaselineBin:    loadtest,
		Floors:         true,
		Command:        "go test -C loadtest -run TestSmokeIdleWebSocketFloor",
	}, &logs)
	t.Logf("its log:\n%s", logs.String())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pass || s.Transport != TransportWebSocket || s.Memory == nil || s.Memory.WebSocketDevs != 60 {
		t.Fatalf("run: pass %v, transport %q, memory %+v, failures %q", s.Pass, s.Transport, s.Memory, s.Failures)
	}
	cs := s.Costs
	if cs == nil || len(cs.Servers) != 2 || cs.Servers[1].Server != "floor-websocket" {
		t.Fatalf("costs %+v", cs)
	}
	for _, c := range cs.Servers {
		if !c.Sampled || c.Devices != 60 || c.Transport != TransportWebSocket || c.RSSPerDeviceKiB <= 0 || c.HandshakesPS <= 0 {
			t.Errorf("%s: %+v", c.Server, c)
		}
	}
	if cs.Floor == nil || cs.Floor.Server != "floor-websocket" || cs.WebSocketShare != 1 || cs.Overhead == nil || cs.Overhead.RSSRatio <= 0 {
		t.Errorf("floor %+v, overhead %+v", cs.Floor, cs.Overhead)
	}
}

// TestSmokeFleet runs the fleet scenario on a small scale: 200 devices, a
// 1 s idle window, 5 webhooks/s for 3 s. Every webhook must be delivered
// once, and the per-1,000 figures and the projections filled in.
func TestSmokeFleet(t *testing.T) {
	relay, _ := buildCommands(t)
	out := filepath.Join(t.TempDir(), "out")
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	s, err := Run(ctx, Config{
		Scenario:       ScenarioFleet,
		Devices:        200,
		WebSocketShare: 0.5,
		ConnectRate:    400,
		IdleSettle:     time.Second,
		Rate:           5,
		Duration:       3 * time.Second,
		Out:            out,
		RelayBin:       relay,
		Command:        "go test -C loadtest -run TestSmokeFleet",
	}, &logs)
	t.Logf("run took %v; its log:\n%s", time.Since(start).Round(time.Millisecond), logs.String())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pass || s.Lost+s.Duplicated+s.Misrouted != 0 {
		t.Errorf("run failed: %q", s.Failures)
	}
	if s.Requests < 12 || s.StatusCounts["200"] != s.Requests || s.Delivered != s.Requests || s.Transport != TransportMixed {
		t.Errorf("requests %d, status %v, delivered %d, transport %s: want ~15, all 200 and delivered, over QUIC and WebSocket", s.Requests, s.StatusCounts, s.Delivered, s.Transport)
	}
	if bt := s.ByTransport; len(bt) != 2 || bt[0].Transport != TransportQUIC || bt[1].Transport != TransportWebSocket ||
		bt[0].Devices != 100 || bt[1].Devices != 100 || bt[0].Webhooks+bt[1].Webhooks != s.Requests {
		t.Errorf("by transport %+v; want 100 QUIC and 100 WebSocket devices sharing the %d webhooks", bt, s.Requests)
	}
	fs := s.Fleet
	if fs == nil {
		t.Fatal("no Summary.Fleet")
	}
	if fs.Devices != 200 || fs.ConnectRate != 400 || fs.WebhookRate != 5 || fs.WebhookEveryS != 40 || fs.KeepAliveS != 20 ||
		fs.IdleS != 1 || fs.SteadyS != 3 || fs.Webhooks != s.Delivered {
		t.Errorf("fleet settings %+v", fs)
	}
	if fs.RSSBeforeMB <= 0 || fs.RSSWithDevicesMB <= fs.RSSBeforeMB || fs.RSSEndMB <= 0 || fs.RSSPer1000MB <= 0 || fs.GeneratorRSSMB <= 0 {
		t.Errorf("fleet memory %+v", fs)
	}
	if fs.SteadyCPUPercent <= 0 || fs.CPUPer1000Percent < 0 || fs.KeepAliveCPUPer1000Percent < 0 {
		t.Errorf("fleet CPU %+v", fs)
	}
	if len(fs.Projections) != 2 {
		t.Fatalf("projections %+v", fs.Projections)
	}
	for i, n := range []int{100_000, 1_000_000} {
		p := fs.Projections[i]
		if p.Devices != n || p.WebhooksPS != float64(n)/40 || p.RSSMB <= fs.RSSWithDevicesMB || p.CPUPercent < fs.BaseCPUPercent {
			t.Errorf("projection for %d: %+v", n, p)
		}
	}
	if !slices.ContainsFunc(s.Warnings, func(w string) bool { return strings.Contains(w, "shorter than the devices' keep-alive") }) {
		t.Errorf("no warning about the 1 s idle window: %q", s.Warnings)
	}
	md, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"## Fleet", "| measured | 200 | 5 |", "| projection, linear, not measured | 1000000 | 25000 |"} {
		if !strings.Contains(string(md), w) {
			t.Errorf("report.md lacks %q", w)
		}
	}
}

// TestSmokeAttacks runs the attackers the other smoke tests do not, on a
// small scale and without a baseline: capacity's ramp (2 steps of 1 s),
// churn (reconnects and rotations for 2 s) and hot (one device with an
// in-flight cap of 4, which must shed with 503s and nothing else).
func TestSmokeAttacks(t *testing.T) {
	relay, _ := buildCommands(t)
	run := func(t *testing.T, cfg Config) *Summary {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var logs bytes.Buffer
		cfg.Devices, cfg.RelayBin, cfg.Command = 40, relay, "go test -C loadtest -run TestSmokeAttacks"
		s, err := Run(ctx, cfg, &logs)
		t.Logf("its log:\n%s", logs.String())
		if err != nil {
			t.Fatal(err)
		}
		if !s.Pass || s.Lost+s.Duplicated+s.Misrouted != 0 {
			t.Errorf("run failed: %q", s.Failures)
		}
		return s
	}
	t.Run("capacity", func(t *testing.T) {
		// An SLO a busy machine holds: both steps are expected to.
		s := run(t, Config{Scenario: ScenarioCapacity, Rate: 100, Step: time.Second, MaxSteps: 2, SLO: time.Second})
		if len(s.Steps) == 0 || s.Steps[0].Rate != 100 || len(s.Steps) > 2 || s.SLOP99MS != 1000 || s.MaxSustainedRate == 0 {
			t.Fatalf("steps %+v, SLO %v ms, max sustained %v", s.Steps, s.SLOP99MS, s.MaxSustainedRate)
		}
		var sent uint64
		var held Step // the highest that held: the run's figures
		for _, st := range s.Steps {
			sent += st.Requests
			if st.Held {
				held = st
			}
		}
		if sent != s.Requests || s.Delivered != s.Requests || held.Rate != s.MaxSustainedRate || s.Latency != held.Latency {
			t.Errorf("steps sent %d, the run %d, delivered %d; latency %+v, the highest step that held %+v", sent, s.Requests, s.Delivered, s.Latency, held)
		}
	})
	t.Run("churn", func(t *testing.T) {
		s := run(t, Config{Scenario: ScenarioChurn, Rate: 100, Duration: 2 * time.Second, ChurnReconnect: 0.2, ChurnRotate: 0.1})
		if c := s.Churn; c == nil || c.Reconnects == 0 || c.Reconnected == 0 || c.Rotations+c.RotationsFailed+c.RotationsSkipped == 0 {
			t.Errorf("churn %+v", c)
		}
	})
	t.Run("hot", func(t *testing.T) {
		s := run(t, Config{Scenario: ScenarioHot, Rate: 300, Duration: 2 * time.Second, MaxInflight: 4})
		if s.Dist != DistHot || s.AckDelayMS != 50 || s.StatusCounts["503"] == 0 || s.StatusCounts["200"]+s.StatusCounts["503"] != s.Requests {
			t.Errorf("dist %s, ack delay %v ms, status %v of %d", s.Dist, s.AckDelayMS, s.StatusCounts, s.Requests)
		}
	})
}
