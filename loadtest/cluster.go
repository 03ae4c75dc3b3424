package loadtest

// This file is the cluster scenario: fanin on a NATS server and several
// relay nodes joined to it, and, after the attack, where the deliveries
// crossed nodes and what that cost. Soak runs on the same cluster.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// ScenarioCluster is fanin over several relay nodes joined by NATS.
const ScenarioCluster = "cluster"

// cluster has no floors: there is no floor for a cluster.
type cluster struct{ steadyAttack }

func (cluster) info() scenarioInfo {
	return scenarioInfo{name: ScenarioCluster, cluster: true, baseline: true}
}

func (cluster) defaults(*Config) error { return nil }

func (sc cluster) run(ctx context.Context, r *runner, s *Summary) error { return r.load(ctx, s, sc) }

func (cluster) pass(cfg Config, s *Summary, e attackErrors) { errorBudget(cfg, s, e) }

// A cluster's nodes drain as in production, with the relay's own defaults:
// GOAWAYs tell devices to move within clusterReconnectSpread, and a node
// exits within clusterDrainTimeout. (The single relay of the other
// scenarios drains in relayDrainTimeout with no spread: it has no devices
// left by then. A node of a cluster has all of them, and a drain timeout
// that ends before they have moved closes their sessions: 502 for the
// messages in flight, 404 until they log in elsewhere.) --relay-flag
// overrides both.
const (
	clusterDrainTimeout    = 15 * time.Second
	clusterReconnectSpread = goAwayMax
	// stopGrace is how much longer than its drain timeout a node may take
	// to exit before it is killed.
	stopGrace = 5 * time.Second
)

// stopTimeout is how long a relay started with args may take from SIGTERM
// to exit: its --drain-timeout (the last one given wins, as in package
// flag) and stopGrace.
func stopTimeout(args []string) time.Duration {
	d := relayStopTimeout - stopGrace
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "drain-timeout" || a == name {
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				continue
			}
			val = args[i+1]
		}
		if v, err := time.ParseDuration(val); err == nil {
			d = v
		}
	}
	return d + stopGrace
}

// NodeLogFile names node i's log in OUT (fmt.Sprintf(NodeLogFile, i)): what
// each of its processes wrote on stderr, a restart's after the one before.
const NodeLogFile = "node-%d.log"

// startCluster starts the NATS server (this binary, --serve-nats, in a
// process of its own) and cfg.Nodes relay nodes joined to it. They share
// one state directory and so one development CA: the first creates it and
// is ready before the others start.
func (r *runner) startCluster(ctx context.Context) (*target, error) {
	cfg := r.cfg
	t := &target{}
	ok := false
	defer func() {
		if !ok {
			t.stop()
		}
	}()
	if cfg.BaselineBin != "" {
		cmd := exec.Command(cfg.BaselineBin, NATSArgs("127.0.0.1:0")...)
		cmd.SysProcAttr = childAttr()
		cmd.Stderr = r.stderr
		p, err := startServer(ctx, cmd, "nats", natsReady, r.pin.child("nats"))
		if err != nil {
			return nil, err
		}
		t.nats, t.natsURL = p, p.Addr
	} else {
		nctx, cancel := context.WithCancel(context.Background())
		url, done, err := ServeNATS(nctx, "127.0.0.1:0")
		if err != nil {
			cancel()
			return nil, err
		}
		t.natsURL = url
		t.natsStop = func() { cancel(); <-done }
	}
	r.logf("NATS server at %s, pid %d (0: in this process)", t.natsURL, t.natsPID())

	dir, err := os.MkdirTemp(r.dir, "cluster-")
	if err != nil {
		return nil, err
	}
	state := filepath.Join(dir, "relay-state")
	var args []string
	if cfg.MaxInflight > 0 {
		args = append(args, "--max-inflight", strconv.Itoa(cfg.MaxInflight))
	}
	if cfg.AckTimeout > 0 {
		args = append(args, "--ack-timeout", cfg.AckTimeout.String())
	}
	// A node without NATS is not ready: a balancer that health-checks
	// /readyz sends it nothing.
	args = append(args, "--nats", t.natsURL, "--ready-needs-cluster",
		"--drain-timeout", clusterDrainTimeout.String(), "--reconnect-spread", clusterReconnectSpread.String())
	if cfg.Out != "" {
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
	}
	for i := range cfg.Nodes {
		a := append(slices.Clone(args), "--nats-name", "node"+strconv.Itoa(i))
		var logTo io.Writer
		if cfg.Out != "" {
			// Every process of the node, restarts included, in one file.
			f, err := os.Create(filepath.Join(cfg.Out, fmt.Sprintf(NodeLogFile, i)))
			if err != nil {
				return nil, fmt.Errorf("loadtest: %w", err)
			}
			t.logs = append(t.logs, f)
			logTo = &lockedWriter{w: f}
		}
		p, err := withMQTT(cfg.MQTTShare > 0, cfg.RelayArgs, func(mqttArgs []string) (*relayProc, error) {
			return startRelayAt(ctx, cfg.RelayBin, state, "127.0.0.1:0", "127.0.0.1:0", slices.Concat(a, mqttArgs, cfg.RelayArgs), logTo, r.pin.child("node "+strconv.Itoa(i)))
		})
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		p.stopAfter = stopTimeout(p.Args)
		t.nodes = append(t.nodes, p)
		r.logf("node %d: relay pid %d listening on %s (admin %s%s)", i, p.PID, p.Addr, p.Admin, mqttNote(p.MQTT))
	}
	first := t.nodes[0]
	t.addr, t.mqtt, t.pid, t.proc = first.Addr, first.MQTT, first.PID, first
	if t.tls, err = tlsTrusting(first.CAFile); err != nil {
		return nil, err
	}
	var ca string
	if t.certFile, t.keyFile, ca, err = DevCertFiles(state); err != nil {
		return nil, err
	}
	if t.baseTLS, err = tlsTrusting(ca); err != nil {
		return nil, err
	}
	t.fe = newFrontends(t.addrs()...)
	r.relayCommand = strings.Join(first.Args, " ")
	ok = true
	return t, nil
}

// addrs are the relay's addresses, one per node.
func (t *target) addrs() []string {
	if len(t.nodes) == 0 {
		return []string{t.addr}
	}
	a := make([]string, len(t.nodes))
	for i, n := range t.nodes {
		a[i] = n.Addr
	}
	return a
}

// mqttAddrs are the relay's MQTT listeners, one per node.
func (t *target) mqttAddrs() []string {
	if len(t.nodes) == 0 {
		return []string{t.mqtt}
	}
	a := make([]string, len(t.nodes))
	for i, n := range t.nodes {
		a[i] = n.MQTT
	}
	return a
}

// pids are the relay's process ids, one per node (0: unknown).
func (t *target) pids() []int {
	if len(t.nodes) == 0 {
		return []int{t.pid}
	}
	p := make([]int, len(t.nodes))
	for i, n := range t.nodes {
		p[i] = n.PID
	}
	return p
}

func (t *target) natsPID() int {
	if t.nats == nil {
		return 0
	}
	return t.nats.PID
}

// stop ends the relay's processes the suite started (a cluster's nodes at
// once, then its NATS server); an unclean exit is an error.
func (t *target) stop() error {
	procs := t.nodes
	if len(procs) == 0 && t.proc != nil {
		procs = []*relayProc{t.proc}
	}
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			if err := p.stop(); err != nil {
				name := "relay"
				if len(t.nodes) > 0 {
					name = "node " + strconv.Itoa(i)
				}
				errs[i] = fmt.Errorf("%s exited badly: %v\n%s", name, err, p.logs)
			}
		})
	}
	wg.Wait()
	if t.nats != nil {
		if err := t.nats.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("NATS server exited badly: %v", err))
		}
		t.nats = nil
	}
	if t.natsStop != nil {
		t.natsStop()
		t.natsStop = nil
	}
	for _, f := range t.logs {
		f.Close()
	}
	t.logs = nil
	return errors.Join(errs...)
}

// newClusterStats describes t's nodes before the attack.
func newClusterStats(t *target) *ClusterStats {
	c := &ClusterStats{NATSURL: t.natsURL}
	for i, n := range t.nodes {
		c.Nodes = append(c.Nodes, NodeStats{Node: i, Addr: n.Addr, Admin: n.Admin, PIDs: []int{n.PID}})
	}
	return c
}

// crossNode sorts the 2xx results into local and cross-node deliveries by
// their routes (targeter.routes) and measures each kind's latency.
func crossNode(c *ClusterStats, results []vegeta.Result, routes *routing) {
	var local, cross []time.Duration
	for i := range results {
		r := &results[i]
		if r.Code < 200 || r.Code >= 300 {
			continue
		}
		id, ok := idFromURL(r.URL)
		if !ok {
			continue
		}
		w, _, d, ok := routes.get(id)
		switch {
		case !ok || d < 0:
			c.Unknown++
		case w == d:
			c.Local++
			local = append(local, r.Latency)
		default:
			c.CrossNode++
			cross = append(cross, r.Latency)
		}
	}
	if n := c.Local + c.CrossNode + c.Unknown; n > 0 {
		c.CrossNodeShare = float64(c.CrossNode) / float64(n)
	}
	c.LocalLatency, c.CrossNodeLatency = latencyOf(local), latencyOf(cross)
}

// latencyOf is the exact percentiles of ds (nearest rank); it sorts ds.
func latencyOf(ds []time.Duration) LatencyMS {
	if len(ds) == 0 {
		return LatencyMS{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return LatencyMS{
		P50:  millis(quantile(ds, 0.50)),
		P90:  millis(quantile(ds, 0.90)),
		P99:  millis(quantile(ds, 0.99)),
		Max:  millis(ds[len(ds)-1]),
		Mean: millis(sum / time.Duration(len(ds))),
	}
}

// countFailures counts failures by key.
func countFailures(fs []failure) map[string]uint64 {
	m := map[string]uint64{}
	for _, f := range fs {
		m[f.key]++
	}
	return m
}
