package loadtest

// This file runs a scenario end to end: the relay process, the swarm, the
// attack (or the capacity ramp), the accounting, the baseline, and the
// Summary.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Run timings.
const (
	// settleExtra is added to the ack delay while waiting for the last
	// handlers after an attack.
	settleExtra = 2 * time.Second
	// requestTimeoutExtra is added to the relay's ack timeout for the
	// generator's own request timeout, so that the relay always answers
	// first.
	requestTimeoutExtra = 5 * time.Second
	defaultAckTimeout   = 5 * time.Second // the relay's --ack-timeout default
)

// Run runs cfg's scenario and returns what it measured. It writes progress
// to stderr and, if cfg.Out is set, the report files. A Summary that does
// not Pass is not an error; an error means the run could not be made.
func Run(ctx context.Context, cfg Config, stderr io.Writer) (*Summary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "loadtest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sc, _ := scenarioNamed(cfg.Scenario) // withDefaults checked it
	r := &runner{cfg: cfg, sc: sc, stderr: &lockedWriter{w: stderr}, dir: dir}
	if cfg.Pin {
		if r.pin, err = startPinning(); err != nil {
			return nil, err
		}
		defer func() {
			if err := r.pin.stop(); err != nil {
				r.logf("%v", err)
			}
		}()
		r.logf("pinned: servers under test on CPU %d, this process (generator and devices) on CPU %d", r.pin.server, r.pin.generator)
	}
	s := &Summary{
		Scenario:     cfg.Scenario,
		Devices:      cfg.Devices,
		Command:      cfg.Command,
		StatusCounts: map[string]uint64{},
	}
	if cfg.Floors && !sc.info().floors {
		r.logf("--floors: not in the %s scenario (only %s); running without", cfg.Scenario, Enumerate(FloorScenarios))
	}
	if err := sc.run(ctx, r, s); err != nil {
		return nil, err
	}
	s.Costs = costStats(r.costs, cfg.mix())
	s.Pin = r.pin.summary()
	s.Pass = len(s.Failures) == 0
	s.RelayCommand = r.relayCommand
	if cfg.Out != "" {
		if err := WriteReport(cfg.Out, s, r.results); err != nil {
			return s, err
		}
	}
	return s, nil
}

// lockedWriter serializes writes: the progress line, the log lines and
// the baseline process's stderr (copied by os/exec's goroutine) share it.
type lockedWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// runner holds one run's state.
type runner struct {
	cfg     Config
	sc      scenario // cfg.Scenario's
	stderr  io.Writer
	dir     string          // temporary, removed after the run
	results []vegeta.Result // every attack's, for plot.html
	// relayCommand is the last started relay's command line.
	relayCommand string
	// pin pins the servers and this process to CPUs of their own; nil
	// without Config.Pin.
	pin *pinning
	// costs are the servers' costs per unit of work, relay first, for
	// Summary.Costs.
	costs []ServerCost
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.stderr, "loadtest: "+format+"\n", args...)
}

// target is the relay under test and what the generator needs to reach it
// and its baseline.
type target struct {
	addr string // the relay; a cluster's first node
	// mqtt is the relay's plain MQTT listener (HOST:PORT), "" without;
	// a cluster's nodes have theirs in nodes.
	mqtt string
	tls  *tls.Config // trusts the relay
	pid  int         // 0 when unknown: no CPU and memory figures
	proc *relayProc  // nil for --target
	fe   *frontends  // where webhooks go: the relay, or the nodes that are ready
	// The baseline presents this certificate (the relay's own, when the
	// suite started the relay) and the generator trusts baseTLS for it.
	certFile, keyFile string
	baseTLS           *tls.Config

	// A cluster: its nodes (a restart replaces one), and its NATS server,
	// a process of its own (nats) or in this one (natsStop ends it).
	nodes    []*relayProc
	nats     *ServerProcess
	natsStop func()
	natsURL  string
	logs     []*os.File // the nodes' logs in OUT; closed by stop
}

// startTarget starts the relay, or checks the one given with --target.
func (r *runner) startTarget(ctx context.Context) (*target, error) {
	cfg := r.cfg
	if r.sc.info().cluster {
		return r.startCluster(ctx)
	}
	if cfg.Target != "" {
		t := &target{addr: cfg.Target, mqtt: cfg.MQTTTarget, pid: cfg.TargetPID, fe: newFrontends(cfg.Target)}
		var err error
		if t.tls, err = tlsTrusting(cfg.CAFile); err != nil {
			return nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, relayStartTimeout)
		defer cancel()
		if err := waitTCP(wctx, t.addr); err != nil {
			return nil, fmt.Errorf("loadtest: --target: %w", err)
		}
		if t.pid == 0 {
			t.pid = listenerPID(t.addr)
		}
		if t.certFile, t.keyFile, err = WriteSelfSigned(r.dir); err != nil {
			return nil, err
		}
		if t.baseTLS, err = tlsTrusting(t.certFile); err != nil {
			return nil, err
		}
		r.logf("relay at %s, pid %d (0: unknown)", t.addr, t.pid)
		if r.pin != nil {
			r.logf("--pin: the --target relay is not pinned (the suite did not start it); the floors and the baseline are")
		}
		return t, nil
	}
	var args []string
	if cfg.MaxInflight > 0 {
		args = append(args, "--max-inflight", strconv.Itoa(cfg.MaxInflight))
	}
	if cfg.AckTimeout > 0 {
		args = append(args, "--ack-timeout", cfg.AckTimeout.String())
	}
	dir, err := os.MkdirTemp(r.dir, "relay-")
	if err != nil {
		return nil, err
	}
	p, err := startRelay(ctx, cfg.RelayBin, dir, args, cfg.RelayArgs, cfg.MQTTShare > 0, r.pin.child("relay"))
	if err != nil {
		return nil, err
	}
	t := &target{addr: p.Addr, mqtt: p.MQTT, pid: p.PID, proc: p, fe: newFrontends(p.Addr)}
	if t.tls, err = tlsTrusting(p.CAFile); err != nil {
		p.stop()
		return nil, err
	}
	var ca string
	if t.certFile, t.keyFile, ca, err = DevCertFiles(p.StateDir); err != nil {
		p.stop()
		return nil, err
	}
	if t.baseTLS, err = tlsTrusting(ca); err != nil {
		p.stop()
		return nil, err
	}
	r.logf("relay pid %d listening on %s (admin %s%s)", p.PID, p.Addr, p.Admin, mqttNote(p.MQTT))
	r.relayCommand = strings.Join(p.Args, " ")
	return t, nil
}

// mqttNote is ", MQTT HOST:PORT" for a relay that takes MQTT clocks.
func mqttNote(addr string) string {
	if addr == "" {
		return ""
	}
	return ", MQTT " + addr
}

// tlsTrusting is a client configuration trusting the PEM certificates in
// caFile (the system roots when caFile is empty).
func tlsTrusting(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return &tls.Config{}, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("loadtest: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("loadtest: no certificate in %s", caFile)
	}
	return &tls.Config{RootCAs: pool}, nil
}

// newSwarm makes the swarm for the relay at t (every node of a cluster),
// with m's shares of devices on each transport.
func (r *runner) newSwarm(t *target, m mix) (*Swarm, error) {
	var addrs, mqtts []string
	if len(t.nodes) > 1 {
		addrs = t.addrs()
		if m.mq > 0 {
			mqtts = t.mqttAddrs()
		}
	}
	return NewSwarm(SwarmConfig{
		Addr:              t.addr,
		Addrs:             addrs,
		TLS:               t.tls,
		Devices:           r.cfg.Devices,
		WebTransportShare: m.wt,
		WebSocketShare:    m.ws,
		MQTTShare:         m.mq,
		MQTTAddr:          t.mqtt,
		MQTTAddrs:         mqtts,
		ConnectRate:       r.cfg.ConnectRate,
		AckDelay:          r.cfg.AckDelay,
		AckJitter:         r.cfg.AckJitter,
		Events:            r.sc.info().cluster,
	})
}

// connect logs the swarm in and records how it went.
func (r *runner) connect(ctx context.Context, sw *Swarm, s *Summary) {
	wait := r.cfg.ConnectTimeout
	if r.cfg.ConnectRate > 0 {
		wait += time.Duration(float64(sw.Len()) / r.cfg.ConnectRate * float64(time.Second))
	}
	cs := sw.Connect(ctx, wait)
	s.Connect = &cs
	s.Connected = sw.Connected()
	s.Transport = transportName(sw)
	r.logf("%d/%d devices connected in %.2f s (%.0f handshakes/s, connect p50 %.1f ms, p99 %.1f ms; %d WebTransport, %d WebSocket, %d MQTT)",
		s.Connected, cs.Devices, cs.AllConnectedS, cs.HandshakesPS, cs.P50MS, cs.P99MS, sw.WebTransportDevices(), sw.WebSocketDevices(), sw.MQTTDevices())
	if n, errs := sw.DialErrors(); n > 0 {
		r.logf("%d dials failed and were retried with backoff; first errors: %s", n, strings.Join(errs, "; "))
	}
	if cs.Failed > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("%d of %d devices did not connect within %v", cs.Failed, cs.Devices, wait))
	}
}

// loadRun is an attacker's run in progress (load): what its attack
// works with.
type loadRun struct {
	r   *runner
	t   *target
	sw  *Swarm // connected
	smp meter
	// spec is the relay's attack, at Config.Rate for Config.Duration.
	spec attackSpec
	// floorSpec is the floors' attack (--floors): spec, unless the
	// scenario's attack changes it.
	floorSpec attackSpec
	// rc is the relay's row of Summary.Costs with --floors, else nil.
	rc     *ServerCost
	routes routing
}

// load runs an attacker: the relay (or the cluster), the swarm, sc's
// attack, the ledger and the accounting, then the floors and the baseline
// on a machine to themselves, and the pass criteria.
func (r *runner) load(ctx context.Context, s *Summary, sc attacker) error {
	cfg := r.cfg
	t, err := r.startTarget(ctx)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			t.stop()
		}
	}()
	s.Target = strings.Join(t.addrs(), ",")
	s.Rate = cfg.Rate
	if sc.info().cluster {
		s.Cluster = newClusterStats(t)
	}
	smp := r.meter(t.pids(), t.natsPID(), s)
	defer smp.stop()

	// With --floors the relay gets a row of Summary.Costs, measured as the
	// floors are: RSS before the devices and after they settled.
	var rc *ServerCost
	if r.costing() {
		c, err := costBefore(ctx, serverRelay, t.pid)
		if err != nil {
			return err
		}
		rc = &c
	}
	sw, err := r.newSwarm(t, cfg.mix())
	if err != nil {
		return err
	}
	defer sw.Close()
	r.connect(ctx, sw, s)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rc != nil {
		if err := rc.afterConnect(ctx, s, rssSettle); err != nil {
			return err
		}
	}

	a := &loadRun{r: r, t: t, sw: sw, smp: smp, rc: rc}
	tg, err := newTargeter(t.fe, sw.Len(), sw.Token, sw.NextID, cfg.Dist, cfg.BitmapShare)
	if err != nil {
		return err
	}
	tg.mqtt = sw.MQTT
	if s.Cluster != nil || len(sw.Transports()) > 1 {
		tg.devs = &a.routes.devs
	}
	if s.Cluster != nil {
		tg.where, tg.routes = sw.Node, &a.routes
	}
	a.spec = attackSpec{
		name:     "relay",
		fe:       t.fe,
		tls:      t.tls,
		rate:     cfg.Rate,
		duration: cfg.Duration,
		timeout:  requestTimeout(cfg),
		expect:   cfg.AckDelay + cfg.AckJitter,
		target:   tg.next,
		progress: r.stderr,
	}
	a.floorSpec = a.spec
	outs, split := sc.attack(ctx, a, s)
	if len(outs) == 0 {
		return ctx.Err()
	}
	sw.Settle(ctx, cfg.AckDelay+cfg.AckJitter+settleExtra)

	// The ledger: every result against what the devices saw.
	var l Ledger
	for _, o := range outs {
		for i := range o.results {
			l.Add(&o.results[i], sw.Seen)
		}
	}
	counts := sw.Counts()
	if s.Churn != nil {
		s.Churn.Reconnected = counts.Reconnects
	}
	if c := s.Cluster; c != nil {
		for i := range c.Nodes {
			c.Nodes[i].Webhooks = t.fe.sent[i].Load()
			c.Nodes[i].Devices = sw.OnNode(i)
		}
		if s.Soak != nil {
			for _, rs := range s.Soak.Restarts {
				if rs.PID != 0 {
					c.Nodes[rs.Node].PIDs = append(c.Nodes[rs.Node].PIDs, rs.PID)
				}
			}
		}
		c.Moves, c.MovesFailed = sw.Moves()
		if c.MovesFailed > 0 {
			r.logf("%d of %d moves after GOAWAY failed to log in; first errors: %s", c.MovesFailed, c.Moves+c.MovesFailed, strings.Join(sw.MoveErrors(), "; "))
		}
		if n := counts.DialErrors - s.Connect.DialErrors; n > 0 {
			r.logf("%d dials failed during the attack (reconnects and moves, retried)", n)
		}
		for _, o := range outs {
			crossNode(c, o.results, &a.routes)
		}
		s.NonOK = map[string]uint64{}
		for _, o := range outs {
			for k, n := range countFailures(o.failed) {
				s.NonOK[k] += n
			}
		}
	}
	sw.Close()
	smp.stop()
	stopped = true
	if err := t.stop(); err != nil {
		s.Failures = append(s.Failures, err.Error())
	}
	r.account(s, &l, counts)
	r.fill(s, outs)
	s.ByTransport = byTransport(sw, split.results, &a.routes.devs)

	// The relay is stopped: the floors and the baseline have the machine
	// to themselves, as it had.
	if rc != nil && ctx.Err() == nil {
		r.costs = append(r.costs, *rc)
		r.logf("relay: %s", costLine(*rc))
		if err := r.floors(ctx, s, t, &a.floorSpec, rssSettle); err != nil {
			return err
		}
	}
	if cfg.Baseline && sc.info().baseline && ctx.Err() == nil {
		if err := r.baseline(ctx, s, t, a.spec, sw); err != nil {
			return err
		}
	}
	r.check(s, outs, sc)
	return ctx.Err()
}

// steadyAttack is the attack of the scenarios that attack once, at
// Config.Rate for Config.Duration, with nothing beside it.
type steadyAttack struct{}

func (steadyAttack) attack(ctx context.Context, a *loadRun, s *Summary) ([]*attackOutcome, *attackOutcome) {
	out := a.steady(ctx, s, nil, nil)
	return []*attackOutcome{out}, out
}

// steady runs the relay's attack once, at Config.Rate for Config.Duration,
// and records its figures: every attacker's but capacity's. started, if
// set, is called as the attack begins (after warming) and ended as it
// ends, before the relay's figures over it are read.
func (a *loadRun) steady(ctx context.Context, s *Summary, started func(time.Time), ended func()) *attackOutcome {
	cfg := a.r.cfg
	spec := a.spec
	spec.started = started
	a.r.logf("%s: %.0f webhooks/s for %v (%s, %.0f%% bitmaps, ack delay %v ± %v)",
		cfg.Scenario, cfg.Rate, cfg.Duration, cfg.Dist, cfg.BitmapShare*100, cfg.AckDelay, cfg.AckJitter)
	m := a.smp.mark()
	out := runAttack(ctx, spec)
	if ended != nil {
		ended()
	}
	rd := a.smp.since(m)
	rd.record(s)
	s.Latency, s.Throughput = latencyMS(&out.metrics), out.throughput()
	if a.rc != nil {
		a.rc.attacked(rd.relay, out)
	}
	return out
}

// requestTimeout is the generator's per-request timeout: above the relay's
// ack timeout, so that a slow device shows as the relay's 504, not as the
// generator giving up.
func requestTimeout(cfg Config) time.Duration {
	ack := cfg.AckTimeout
	if ack <= 0 {
		ack = defaultAckTimeout
	}
	return ack + requestTimeoutExtra
}

// account copies the ledger into the Summary.
func (r *runner) account(s *Summary, l *Ledger, c SwarmCounts) {
	s.Delivered, s.Lost, s.Duplicated, s.Misrouted, s.Late = l.Delivered, l.Lost, l.Duplicated, l.Misrouted, l.Late
	s.Failures = append(s.Failures, l.Failures(c.Handled)...)
	if c.Misrouted > 0 && l.Misrouted == 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("devices saw %d misrouted messages", c.Misrouted))
	}
	if c.Unparsed > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("devices got %d bodies without a readable message id", c.Unparsed))
	}
	if c.Stray > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("devices got %d message ids that were never sent", c.Stray))
	}
}

// fill sums the attacks into the Summary.
func (r *runner) fill(s *Summary, outs []*attackOutcome) {
	var dur time.Duration
	for _, o := range outs {
		s.Requests += o.metrics.Requests
		for code, n := range o.metrics.StatusCodes {
			s.StatusCounts[code] += uint64(n)
		}
		dur += o.metrics.Duration + o.metrics.Wait
		r.results = append(r.results, o.results...)
	}
	s.DurationS = dur.Seconds()
	s.Dist, s.AckDelayMS, s.AckJitterMS = r.cfg.Dist, millis(r.cfg.AckDelay), millis(r.cfg.AckJitter)
}

// baseline runs the same attack (or ramp) against a bare fasthttp TLS
// handler and records relay minus baseline.
func (r *runner) baseline(ctx context.Context, s *Summary, t *target, spec attackSpec, sw *Swarm) error {
	cfg := r.cfg
	var addr string
	pid := 0
	if cfg.BaselineBin != "" {
		cmd := exec.Command(cfg.BaselineBin, BaselineArgs("127.0.0.1:0", t.certFile, t.keyFile)...)
		cmd.SysProcAttr = childAttr()
		cmd.Stderr = r.stderr
		b, err := startServer(ctx, cmd, "baseline", baselineReady, r.pin.child("baseline"))
		if err != nil {
			return err
		}
		defer b.Stop()
		addr, pid = b.Addr, b.PID
	} else {
		cert, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
		if err != nil {
			return fmt.Errorf("loadtest: baseline certificate: %w", err)
		}
		bctx, cancel := context.WithCancel(ctx)
		defer cancel()
		a, err := ServeBaseline(bctx, "127.0.0.1:0", cert)
		if err != nil {
			return err
		}
		addr = a.String()
	}
	r.logf("baseline: bare fasthttp TLS handler on %s (%s)", addr, map[bool]string{true: "own process", false: "in this process"}[pid != 0])

	// Same distribution, bodies and token shapes; ids of its own.
	var ids atomic.Uint64
	fe := newFrontends(addr)
	tg, err := newTargeter(fe, sw.Len(), sw.Token, func() uint64 { return ids.Add(1) - 1 }, cfg.Dist, cfg.BitmapShare)
	if err != nil {
		return err
	}
	tg.mqtt = sw.MQTT // the same bodies as the relay's devices got
	spec.name, spec.fe, spec.tls, spec.target = "baseline", fe, t.baseTLS, tg.next
	spec.expect = 0 // the bare handler answers at once: a pool for its latency
	spec.started = nil

	// The baseline's meter: its "relay" is the baseline process.
	var smp meter
	if pid != 0 {
		if sm, err := StartSampler(pid, sampleEvery); err == nil {
			smp.nodes = []*procSeries{newSeries(sm)}
		}
	}
	defer smp.stop()

	bs := &BaselineStats{}
	var out *attackOutcome
	if len(s.Steps) > 0 {
		runs := r.ramp(ctx, spec, smp, len(s.Steps))
		if len(runs) == 0 {
			return ctx.Err()
		}
		// Compare at the relay's best step: the same rate, or the
		// highest the baseline reached below it.
		at := 0
		for i, run := range runs {
			s.BaselineSteps = append(s.BaselineSteps, run.step)
			r.results = append(r.results, run.out.results...)
			if run.step.Held {
				s.BaselineMaxSustainedRate = run.step.Rate
			}
			if run.step.Rate <= max(s.MaxSustainedRate, s.Steps[0].Rate) {
				at = i
			}
		}
		out = runs[at].out
		if pid != 0 {
			bs.Process = &runs[at].proc.relay
		}
		if last := runs[len(runs)-1].step; !last.Held {
			s.Warnings = append(s.Warnings, fmt.Sprintf("the baseline also failed at %.0f/s: there the load generator on this machine, not the relay, is the limit", last.Rate))
		}
	} else {
		m := smp.mark()
		out = runAttack(ctx, spec)
		ps := smp.since(m)
		if pid != 0 {
			bs.Process = &ps.relay
		}
		r.results = append(r.results, out.results...)
	}
	if out == nil {
		return nil
	}
	bs.Requests = out.metrics.Requests
	bs.Throughput = out.throughput()
	bs.Latency = latencyMS(&out.metrics)
	bs.AddedP50MS = s.Latency.P50 - bs.Latency.P50
	bs.AddedP99MS = s.Latency.P99 - bs.Latency.P99
	if bs.Throughput > 0 {
		bs.ThroughputRatio = s.Throughput / bs.Throughput
	}
	s.Baseline = bs
	if r.costing() {
		c := ServerCost{Server: serverBaseline, PID: pid, Sampled: bs.Process != nil}
		var ps ProcessStats
		if bs.Process != nil {
			ps = *bs.Process
		}
		c.attacked(ps, out)
		r.costs = append(r.costs, c)
	}
	if out.errs > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("the baseline failed %d of %d requests (%s): the generator is overloaded", out.errs, out.metrics.Requests, errorSamples(out)))
	}
	return nil
}

// attackErrors are the failed webhooks of a run's attacks.
type attackErrors struct {
	n       uint64
	samples string // their error texts with counts (errorSamples), "; " between attacks
}

// check applies sc's own pass criteria, then the warnings every attack
// shares.
func (r *runner) check(s *Summary, outs []*attackOutcome, sc passer) {
	cfg := r.cfg
	var e attackErrors
	var samples []string
	for _, o := range outs {
		e.n += o.errs
		if o.errs > 0 {
			samples = append(samples, errorSamples(o))
		}
	}
	e.samples = strings.Join(samples, "; ")
	sc.pass(cfg, s, e)
	if s.OtherCPUPercent > otherCPUWarn {
		if c := s.Cluster; c != nil {
			s.Warnings = append(s.Warnings, fmt.Sprintf("other processes on this host used %.0f%% CPU during the attack (relay nodes %.0f%%, NATS %.0f%%, generator %.0f%%): the figures are disturbed; rerun on a quiet machine",
				s.OtherCPUPercent, s.RelayCPUPercent, c.NATS.CPUPercent, s.Generator.CPUPercent))
		} else {
			s.Warnings = append(s.Warnings, fmt.Sprintf("other processes on this host used %.0f%% CPU during the attack (relay %.0f%%, generator %.0f%%): the figures are disturbed; rerun on a quiet machine",
				s.OtherCPUPercent, s.RelayCPUPercent, s.Generator.CPUPercent))
		}
	}
	if c := s.Cluster; c != nil && c.NATS.PID == 0 {
		s.Warnings = append(s.Warnings, "the NATS server ran inside the generator's process: its CPU and memory are the generator's")
	}
	// A generator that could not send at the asked rate measured less. A
	// ramp (Summary.Steps) asked several rates.
	if len(s.Steps) == 0 && len(outs) == 1 {
		if got := outs[0].metrics.Rate; got < 0.9*cfg.Rate {
			s.Warnings = append(s.Warnings, fmt.Sprintf("the generator sent %.0f/s of the %.0f/s asked", got, cfg.Rate))
		}
	}
}

// errorBudget fails s if more of its webhooks failed than
// Config.MaxErrorRate allows: the criterion of the scenarios that expect
// every webhook answered.
func errorBudget(cfg Config, s *Summary, e attackErrors) {
	if s.Requests > 0 && float64(e.n)/float64(s.Requests) > cfg.MaxErrorRate {
		s.Failures = append(s.Failures, fmt.Sprintf("%d of %d webhooks failed (%s), above the %.2f%% budget",
			e.n, s.Requests, e.samples, cfg.MaxErrorRate*100))
	}
}

// failedOtherThan counts s's webhooks answered other than 2xx and the
// allowed status codes.
func failedOtherThan(s *Summary, allowed ...string) uint64 {
	var n uint64
	for code, c := range s.StatusCounts {
		if !strings.HasPrefix(code, "2") && !slices.Contains(allowed, code) {
			n += c
		}
	}
	return n
}

// errorSamples lists an attack's error texts with their counts.
func errorSamples(o *attackOutcome) string {
	var parts []string
	for _, e := range slices.Sorted(maps.Keys(o.samples)) {
		parts = append(parts, fmt.Sprintf("%dx %s", o.samples[e], e))
	}
	return strings.Join(parts, ", ")
}
