package loadtest

// This file measures Summary.Costs (Config.Floors): the relay's own row,
// then the floors (floor.go), each in a process of its own with a fresh
// swarm of the relay's size on its transport, the relay's attack, and the
// same measurements (RSS before and with the devices, handshakes per
// second, CPU per webhook, the ledger).

import (
	"context"
	"crypto/tls"
	"fmt"
	"os/exec"
	"sync"
	"time"
)

// costing reports whether this run compares the relay with its floors.
func (r *runner) costing() bool { return r.cfg.Floors && r.sc.info().floors }

// costBefore starts a server's row: its RSS with no devices, read after
// the fresh process has sat rssSettle. A server whose PID is unknown (0:
// in this process, or a --target without one) is not sampled.
func costBefore(ctx context.Context, name string, pid int) (ServerCost, error) {
	c := ServerCost{Server: name, PID: pid}
	if pid == 0 {
		return c, nil
	}
	if !sleepCtx(ctx, rssSettle) {
		return c, ctx.Err()
	}
	if mb, err := RSS(pid); err == nil {
		c.Sampled, c.RSSBeforeMB = true, mb
	}
	return c, nil
}

// afterConnect records how the swarm connected (cs is what connect
// filled in) and, once the devices have sat settle, the RSS with them.
func (c *ServerCost) afterConnect(ctx context.Context, cs *Summary, settle time.Duration) error {
	c.Transport, c.Devices = cs.Transport, cs.Connected
	if cs.Connect != nil {
		c.HandshakesPS = cs.Connect.HandshakesPS
	}
	if !sleepCtx(ctx, settle) {
		return ctx.Err()
	}
	if !c.Sampled {
		return nil
	}
	after, err := RSS(c.PID)
	if err != nil {
		c.Sampled = false // the process went away: no figures rather than half
		return nil
	}
	c.setRSS(c.RSSBeforeMB, after)
	return nil
}

// attacked records an attack's webhooks and latency and, when the process
// is sampled, its CPU over the attack (ps).
func (c *ServerCost) attacked(ps ProcessStats, out *attackOutcome) {
	c.Webhooks, c.Latency = out.ok, latencyMS(&out.metrics)
	if c.Sampled {
		c.setCPU(cpuSeconds(ps), out.ok)
	}
}

// floors runs every floor the relay's swarm needs, in turn. spec is the
// relay's attack; nil for none (idle), when the devices sit settle before
// the RSS is read, as the relay's did.
func (r *runner) floors(ctx context.Context, s *Summary, t *target, spec *attackSpec, settle time.Duration) error {
	for _, kind := range transportsOf(r.cfg.mix()) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if kind == TransportMQTT {
			// No bare MQTT server takes webhooks: the idle scenario
			// compares the relay's MQTT clocks with mosquitto's instead.
			r.logf("floors: none for MQTT clocks (the idle and mqttstorm scenarios compare them with mosquitto)")
			continue
		}
		c, err := r.floor(ctx, s, t, kind, spec, settle)
		if err != nil {
			return err
		}
		r.costs = append(r.costs, c)
	}
	return nil
}

// floor runs one floor of kind and measures it.
func (r *runner) floor(ctx context.Context, s *Summary, t *target, kind string, spec *attackSpec, settle time.Duration) (ServerCost, error) {
	cfg := r.cfg
	name := floorName(kind)
	addr, pid, stop, err := r.startFloor(ctx, kind, t)
	if err != nil {
		return ServerCost{Server: name}, err
	}
	defer stop()
	r.logf("%s: bare %s server and fasthttp frontend on %s, pid %d (0: in this process, not sampled)", name, kind, addr, pid)
	c, err := costBefore(ctx, name, pid)
	if err != nil {
		return c, err
	}
	devices := pure(kind)
	sw, err := NewSwarm(SwarmConfig{
		Addr:              addr,
		TLS:               t.baseTLS,
		Devices:           cfg.Devices,
		WebTransportShare: devices.wt,
		WebSocketShare:    devices.ws,
		ConnectRate:       cfg.ConnectRate,
		AckDelay:          cfg.AckDelay,
		AckJitter:         cfg.AckJitter,
	})
	if err != nil {
		return c, err
	}
	defer sw.Close()
	var ps Summary
	r.connect(ctx, sw, &ps)
	if ctx.Err() != nil {
		return c, ctx.Err()
	}
	for _, f := range ps.Failures {
		s.Failures = append(s.Failures, name+": "+f)
	}
	if err := c.afterConnect(ctx, &ps, settle); err != nil {
		return c, err
	}
	if spec != nil {
		if err := r.floorAttack(ctx, s, &c, sw, addr, t, *spec); err != nil {
			return c, err
		}
	}
	sw.Close()
	if err := stop(); err != nil {
		s.Failures = append(s.Failures, fmt.Sprintf("%s exited badly: %v", name, err))
	}
	r.logf("%s: %s", name, costLine(c))
	return c, nil
}

// floorAttack runs spec against the floor at addr and accounts for it.
func (r *runner) floorAttack(ctx context.Context, s *Summary, c *ServerCost, sw *Swarm, addr string, t *target, spec attackSpec) error {
	cfg := r.cfg
	fe := newFrontends(addr)
	tg, err := newTargeter(fe, sw.Len(), sw.Token, sw.NextID, cfg.Dist, cfg.BitmapShare)
	if err != nil {
		return err
	}
	spec.name, spec.fe, spec.tls, spec.target, spec.started = c.Server, fe, t.baseTLS, tg.next, nil
	r.logf("%s: %s webhooks/s for %v", c.Server, num(spec.rate), spec.duration)
	var sm *Sampler
	if c.Sampled {
		if sm, err = StartSampler(c.PID, sampleEvery); err != nil {
			c.Sampled = false
		}
	}
	var m Mark
	if sm != nil {
		m = sm.Mark()
	}
	out := runAttack(ctx, spec)
	var ps ProcessStats
	if sm != nil {
		ps = sm.Since(m)
		sm.Stop()
	}
	c.attacked(ps, out)
	sw.Settle(ctx, cfg.AckDelay+cfg.AckJitter+settleExtra)

	var l Ledger
	for i := range out.results {
		l.Add(&out.results[i], sw.Seen)
	}
	c.Lost, c.Duplicated, c.Misrouted = l.Lost, l.Duplicated, l.Misrouted
	for _, f := range l.Failures(sw.Counts().Handled) {
		s.Failures = append(s.Failures, c.Server+": "+f)
	}
	if out.errs > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%s: %d of %d webhooks failed (%s): its figures are off", c.Server, out.errs, out.metrics.Requests, errorSamples(out)))
	}
	r.results = append(r.results, out.results...)
	return nil
}

// startFloor starts a floor of kind with the relay's certificate: a
// process of its own (pinned with the servers) or, without BaselineBin,
// in this one (pid 0). stop ends it; it may be called more than once.
func (r *runner) startFloor(ctx context.Context, kind string, t *target) (addr string, pid int, stop func() error, err error) {
	if r.cfg.BaselineBin != "" {
		cmd := exec.Command(r.cfg.BaselineBin, FloorArgs(kind, "127.0.0.1:0", t.certFile, t.keyFile)...)
		cmd.SysProcAttr = childAttr()
		cmd.Stderr = r.stderr
		p, err := StartFloor(ctx, cmd, r.pin.child(floorName(kind)))
		if err != nil {
			return "", 0, nil, err
		}
		return p.Addr, p.PID, sync.OnceValue(p.Stop), nil
	}
	cert, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
	if err != nil {
		return "", 0, nil, fmt.Errorf("loadtest: floor certificate: %w", err)
	}
	fctx, cancel := context.WithCancel(ctx)
	a, done, err := serveFloor(fctx, kind, "127.0.0.1:0", cert)
	if err != nil {
		cancel()
		return "", 0, nil, err
	}
	return a.String(), 0, sync.OnceValue(func() error { cancel(); <-done; return nil }), nil
}

// costLine is one server's figures for the log.
func costLine(c ServerCost) string {
	return fmt.Sprintf("%d devices, %s handshakes/s, RSS %s -> %s MB (%s KiB per device), %d webhooks, CPU %s µs per webhook, p50 %s ms, p99 %s ms",
		c.Devices, num(c.HandshakesPS), num1(c.RSSBeforeMB), num1(c.RSSAfterMB), num1(c.RSSPerDeviceKiB),
		c.Webhooks, num1(c.CPUPerWebhookUS), ms(c.Latency.P50), ms(c.Latency.P99))
}
