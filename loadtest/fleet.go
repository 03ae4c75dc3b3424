package loadtest

// This file is the fleet scenario: a realistic fleet, many devices that
// sit idle with keep-alives and get a webhook now and then, and what it
// costs the relay per 1,000 devices: memory, the keep-alives' CPU and the
// webhooks'. Projections to larger fleets are derived from those figures,
// linearly, and say so.
//
// The generator's limits at 20,000 devices: the swarm shares one UDP
// socket among DefaultPerSocket devices (79 sockets), and the webhooks use
// a pool of at least minConns TLS connections, so descriptors are not the
// limit (Go raises RLIMIT_NOFILE's soft limit to the hard one at start
// anyway). Memory is: every device is a quic-go client connection in this
// process, about as large as the relay's side of it (GeneratorRSSMB).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pixelrelay/relay/device"
)

// ScenarioFleet is a realistic fleet: many idle devices, few webhooks;
// the cost per 1,000 devices.
const ScenarioFleet = "fleet"

// The fleet's defaults: a large fleet, slow to get webhooks.
const (
	DefaultFleetDevices     = 20000
	DefaultFleetConnectRate = 500 // devices/s
	DefaultFleetDuration    = 5 * time.Minute
	DefaultFleetIdle        = 30 * time.Second
	// FleetWebhookEvery is how often one device of a fleet gets a webhook.
	FleetWebhookEvery = 10 * time.Minute
)

// fleet has no baseline and no floors: its attack is long and its figures
// are per 1,000 devices.
type fleet struct{}

func (fleet) info() scenarioInfo { return scenarioInfo{name: ScenarioFleet, subRate: true} }

// defaults: Devices DefaultFleetDevices connecting at
// DefaultFleetConnectRate, Rate one webhook per device every
// FleetWebhookEvery (Devices/600 per second, which may be below 1),
// Duration DefaultFleetDuration, IdleSettle DefaultFleetIdle.
func (fleet) defaults(c *Config) error {
	if c.Devices <= 0 {
		c.Devices = DefaultFleetDevices
	}
	if c.Rate <= 0 {
		c.Rate = float64(c.Devices) / FleetWebhookEvery.Seconds()
	}
	defaultTo(&c.Duration, DefaultFleetDuration)
	if c.ConnectRate <= 0 {
		c.ConnectRate = DefaultFleetConnectRate
	}
	defaultTo(&c.IdleSettle, DefaultFleetIdle)
	return nil
}

func (fleet) pass(cfg Config, s *Summary, e attackErrors) { errorBudget(cfg, s, e) }

// fleetBase is how long the relay sits with no devices while its base CPU
// and RSS are read: long enough for a few samples at sampleEvery.
const fleetBase = 3 * time.Second

// projectTo are the fleet sizes the figures are extrapolated to.
var projectTo = []int{100_000, 1_000_000}

// run runs the fleet scenario: the relay alone (base), the fleet
// connected with keep-alives only (idle), then webhooks at Rate (steady).
func (sc fleet) run(ctx context.Context, r *runner, s *Summary) error {
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
	s.Target, s.Rate = t.addr, cfg.Rate
	if t.pid == 0 {
		return errors.New("loadtest: fleet needs the relay's PID (--target-pid) to read its CPU and memory")
	}
	smp := r.meter([]int{t.pid}, 0, s)
	defer smp.stop()
	fs := &FleetStats{
		ConnectRate: cfg.ConnectRate,
		WebhookRate: cfg.Rate,
		KeepAliveS:  device.DefaultKeepAlive.Seconds(), // the swarm's devices keep the default
		IdleS:       cfg.IdleSettle.Seconds(),
		SteadyS:     cfg.Duration.Seconds(),
	}
	s.Fleet = fs

	base, ok := window(ctx, smp, fleetBase)
	if !ok {
		return ctx.Err()
	}
	fs.BaseCPUPercent, fs.RSSBeforeMB = base.relay.CPUPercent, base.relay.RSSMB

	sw, err := r.newSwarm(t, cfg.mix())
	if err != nil {
		return err
	}
	defer sw.Close()
	r.connect(ctx, sw, s)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fs.Devices = s.Connected
	r.logf("fleet: %v with keep-alives only (every %v per device)", cfg.IdleSettle, device.DefaultKeepAlive)
	idle, ok := window(ctx, smp, cfg.IdleSettle)
	if !ok {
		return ctx.Err()
	}
	fs.IdleCPUPercent, fs.RSSWithDevicesMB, fs.GeneratorRSSMB = idle.relay.CPUPercent, idle.relay.RSSMB, idle.self.RSSMB

	tg, err := newTargeter(t.fe, sw.Len(), sw.Token, sw.NextID, cfg.Dist, cfg.BitmapShare)
	if err != nil {
		return err
	}
	tg.mqtt = sw.MQTT
	var devs idTable // for ByTransport
	if len(sw.Transports()) > 1 {
		tg.devs = &devs
	}
	spec := attackSpec{
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
	r.logf("fleet: %s webhooks/s for %v (one per device every %s s)", sig3(cfg.Rate), cfg.Duration, num(float64(sw.Len())/cfg.Rate))
	// The window starts once the generator's connection pool is open: at
	// a fleet's few webhooks a second, the pool's TLS handshakes would
	// otherwise weigh on the CPU per webhook.
	var m meterMark
	spec.started = func(time.Time) { m = smp.mark() }
	out := runAttack(ctx, spec)
	steady := smp.since(m)
	steady.record(s)
	s.Latency, s.Throughput = latencyMS(&out.metrics), out.throughput()
	fs.SteadyCPUPercent, fs.RSSEndMB, fs.Webhooks = steady.relay.CPUPercent, steady.relay.RSSMB, out.ok
	fs.derive(steady.relay.wall)

	sw.Settle(ctx, cfg.AckDelay+cfg.AckJitter+settleExtra)
	var l Ledger
	for i := range out.results {
		l.Add(&out.results[i], sw.Seen)
	}
	counts := sw.Counts()
	sw.Close()
	smp.stop()
	stopped = true
	if err := t.stop(); err != nil {
		s.Failures = append(s.Failures, err.Error())
	}
	r.account(s, &l, counts)
	outs := []*attackOutcome{out}
	r.fill(s, outs)
	s.ByTransport = byTransport(sw, out.results, &devs)
	r.check(s, outs, sc)
	if cfg.IdleSettle < device.DefaultKeepAlive {
		s.Warnings = append(s.Warnings, fmt.Sprintf("the idle window (%v) is shorter than the devices' keep-alive period (%v): "+
			"the first keep-alives fall in the steady window, so the keep-alives' CPU is understated and the CPU per webhook overstated",
			cfg.IdleSettle, device.DefaultKeepAlive))
	}
	r.logf("fleet: %s", fleetLine(fs))
	return ctx.Err()
}

// window samples the relay and this process over d in which the run does
// nothing new; false if ctx ended first.
func window(ctx context.Context, smp meter, d time.Duration) (reading, bool) {
	m := smp.mark()
	if !sleepCtx(ctx, d) {
		return reading{}, false
	}
	return smp.since(m), true
}

// derive computes the per-1,000 figures and the projections from the
// measured windows; steady is the steady window's length. A difference
// that noise makes negative (the idle window below the base) counts as 0.
func (fs *FleetStats) derive(steady time.Duration) {
	if fs.Devices <= 0 || fs.WebhookRate <= 0 {
		return
	}
	k := float64(fs.Devices) / 1000
	fs.WebhookEveryS = float64(fs.Devices) / fs.WebhookRate
	fs.RSSPer1000MB = max(fs.RSSWithDevicesMB-fs.RSSBeforeMB, 0) / k
	fs.KeepAliveCPUPer1000Percent = max(fs.IdleCPUPercent-fs.BaseCPUPercent, 0) / k
	fs.CPUPer1000Percent = max(fs.SteadyCPUPercent-fs.BaseCPUPercent, 0) / k
	if fs.Webhooks > 0 {
		cpuS := max(fs.SteadyCPUPercent-fs.IdleCPUPercent, 0) / 100 * steady.Seconds()
		fs.CPUPerWebhookUS = perWebhookUS(cpuS, fs.Webhooks)
	}
	fs.Projections = fs.Projections[:0]
	for _, n := range projectTo {
		fs.Projections = append(fs.Projections, fs.project(n))
	}
}

// project extrapolates the fleet to n devices on one node, each getting
// webhooks as often as here: the base plus n times the per-device figures.
// CPU scales the steady window's whole cost per device (keep-alives and
// webhooks together), not the idle window's plus a per-webhook figure: at
// a fleet's low webhook rate that difference is within the noise (the
// idle window, right after the connects, also carries their garbage).
func (fs *FleetStats) project(n int) FleetProjection {
	k := float64(n) / 1000
	rate := float64(n) / fs.WebhookEveryS
	return FleetProjection{
		Devices:    n,
		WebhooksPS: rate,
		RSSMB:      fs.RSSBeforeMB + fs.RSSPer1000MB*k,
		CPUPercent: fs.BaseCPUPercent + fs.CPUPer1000Percent*k,
	}
}

// fleetLine is the fleet's figures for the log.
func fleetLine(fs *FleetStats) string {
	var proj []string
	for _, p := range fs.Projections {
		proj = append(proj, fmt.Sprintf("%d devices %s MB %s%%", p.Devices, num(p.RSSMB), pct(p.CPUPercent)))
	}
	return fmt.Sprintf("%d devices: RSS %s -> %s MB (%s MB per 1,000), CPU base %s%% idle %s%% steady %s%% (keep-alives %s%%, all %s%% per 1,000; %s µs per webhook); projected (linear, not measured): %s",
		fs.Devices, num1(fs.RSSBeforeMB), num1(fs.RSSWithDevicesMB), num1(fs.RSSPer1000MB),
		pct(fs.BaseCPUPercent), pct(fs.IdleCPUPercent), pct(fs.SteadyCPUPercent),
		pct3(fs.KeepAliveCPUPer1000Percent), pct3(fs.CPUPer1000Percent), num1(fs.CPUPerWebhookUS), strings.Join(proj, ", "))
}

// pct3 is a small percentage with three significant figures: a keep-alive
// costs thousandths of a percent per device.
func pct3(v float64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%.3g", v)
}
