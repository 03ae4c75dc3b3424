package loadtest

// This file is the idle scenario: the relay's memory per connected device
// that sends and receives nothing but keep-alives.

import (
	"context"
	"errors"
	"time"
)

// idle measures the relay's memory per connected idle device: RSS before
// the swarm and after it has settled. With a mixed swarm it also measures
// QUIC-only and WebTransport-only swarms, each on a fresh relay.
func (r *runner) idle(ctx context.Context, s *Summary) error {
	cfg := r.cfg
	shares := []float64{cfg.WebTransportShare}
	if cfg.WebTransportShare > 0 && cfg.WebTransportShare < 1 && cfg.Target == "" {
		shares = append(shares, 0, 1)
	}
	for i, share := range shares {
		mem, err := r.idlePhase(ctx, s, share, i == 0)
		if err != nil {
			return err
		}
		if i == 0 {
			s.Memory = mem
		} else {
			s.Memory.ByTransport = append(s.Memory.ByTransport, TransportMemory{
				Transport:    map[float64]string{0: "quic", 1: "webtransport"}[share],
				Devices:      mem.QUICDevices + mem.WebTransDevices,
				RSSBeforeMB:  mem.RSSBeforeMB,
				RSSAfterMB:   mem.RSSAfterMB,
				PerDeviceKiB: mem.PerDeviceKiB,
			})
		}
	}
	return nil
}

// idlePhase is one idle measurement on its own relay; main fills the
// Summary's relay, connect and transport figures.
func (r *runner) idlePhase(ctx context.Context, s *Summary, share float64, main bool) (*MemoryStats, error) {
	t, err := r.startTarget(ctx)
	if err != nil {
		return nil, err
	}
	defer t.stop()
	if main {
		s.Target = t.addr
	}
	if t.pid == 0 {
		return nil, errors.New("loadtest: idle needs the relay's PID (--target-pid) to read its memory")
	}
	// Let the fresh relay finish starting before the first reading.
	if !sleepCtx(ctx, time.Second) {
		return nil, ctx.Err()
	}
	before, err := RSS(t.pid)
	if err != nil {
		return nil, err
	}
	sw, err := r.newSwarm(t, share)
	if err != nil {
		return nil, err
	}
	defer sw.Close()
	var ps Summary
	ps.StatusCounts = map[string]uint64{}
	r.connect(ctx, sw, &ps)
	smp := r.meter([]int{t.pid}, 0, &ps)
	defer smp.stop()
	m := smp.mark()
	if !sleepCtx(ctx, r.cfg.IdleSettle) {
		return nil, ctx.Err()
	}
	rd := smp.since(m)
	smp.stop()
	after, err := RSS(t.pid)
	if err != nil {
		return nil, err
	}
	mem := &MemoryStats{
		RSSBeforeMB:     before,
		RSSAfterMB:      after,
		QUICDevices:     sw.Len() - sw.WebTransportDevices(),
		WebTransDevices: sw.WebTransportDevices(),
	}
	if n := sw.Connected(); n > 0 {
		mem.PerDeviceKiB = (after - before) * 1024 / float64(n)
	}
	r.logf("idle (%s): relay RSS %.1f -> %.1f MB with %d devices: %.1f KiB per device", transportName(sw), before, after, sw.Connected(), mem.PerDeviceKiB)
	if main {
		s.Connect, s.Connected, s.Transport = ps.Connect, ps.Connected, ps.Transport
		rd.record(s)
		s.DurationS = r.cfg.IdleSettle.Seconds()
	}
	s.Failures = append(s.Failures, ps.Failures...)
	s.Warnings = append(s.Warnings, ps.Warnings...)
	sw.Close()
	if err := t.stop(); err != nil {
		s.Failures = append(s.Failures, err.Error())
	}
	return mem, nil
}
