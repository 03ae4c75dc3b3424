package loadtest

// This file is the idle scenario: the relay's memory per connected device
// that sends and receives nothing but keep-alives, and, for MQTT clocks,
// mosquitto's per connection beside it.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// ScenarioIdle is memory per connected idle device.
const ScenarioIdle = "idle"

type idle struct{}

func (idle) info() scenarioInfo { return scenarioInfo{name: ScenarioIdle, floors: true} }

func (idle) defaults(*Config) error { return nil }

// run measures the relay's memory per connected idle device: RSS before
// the swarm and after it has settled. With a swarm on several transports
// it also measures each transport alone, each on a fresh relay. With MQTT
// clocks, mosquitto follows with as many idle clocks as the relay had on
// MQTT alone (all the devices), settled as long. With --floors, the
// floors' idle devices follow, settled as long.
func (idle) run(ctx context.Context, r *runner, s *Summary) error {
	cfg := r.cfg
	phases := []mix{cfg.mix()}
	var alone []string // the transports measured alone after the main phase
	if ts := transportsOf(cfg.mix()); len(ts) > 1 && cfg.Target == "" {
		alone = ts
		for _, tr := range ts {
			phases = append(phases, pure(tr))
		}
	}
	var first *target // the first relay's, stopped: its certificate serves the floors
	for i, m := range phases {
		mem, t, err := r.idlePhase(ctx, s, m, i == 0)
		if err != nil {
			return err
		}
		if i == 0 {
			s.Memory, first = mem, t
		} else {
			s.Memory.ByTransport = append(s.Memory.ByTransport, TransportMemory{
				Transport:    alone[i-1],
				Devices:      mem.QUICDevices + mem.WebTransDevices + mem.WebSocketDevs + mem.MQTTDevices,
				RSSBeforeMB:  mem.RSSBeforeMB,
				RSSAfterMB:   mem.RSSAfterMB,
				PerDeviceKiB: mem.PerDeviceKiB,
			})
		}
	}
	if cfg.MQTTShare > 0 && ctx.Err() == nil {
		if err := r.idleMosquitto(ctx, s); err != nil {
			return err
		}
	}
	if r.costing() && ctx.Err() == nil {
		return r.floors(ctx, s, first, nil, cfg.IdleSettle)
	}
	return nil
}

// idleMosquitto measures mosquitto as the relay was measured: its RSS
// with no clocks, and after Config.Devices idle MQTT clocks logged in
// (at Config.ConnectRate) and sat Config.IdleSettle.
func (r *runner) idleMosquitto(ctx context.Context, s *Summary) error {
	cfg := r.cfg
	dir, err := os.MkdirTemp(r.dir, "mosquitto-")
	if err != nil {
		return err
	}
	m, err := startMosquitto(ctx, dir, r.pin.child("mosquitto"))
	if errors.Is(err, errNoMosquitto) {
		s.Warnings = append(s.Warnings, err.Error()+"; the relay's MQTT figure stands alone")
		return nil
	}
	if err != nil {
		return err
	}
	defer m.stop()
	r.logf("mosquitto: %s, pid %d on %s", m.Version, m.PID, m.Addr)
	if !sleepCtx(ctx, time.Second) { // as the relay: let it finish starting
		return ctx.Err()
	}
	before, err := RSS(m.PID)
	if err != nil {
		return err
	}
	sw, err := NewSwarm(SwarmConfig{Devices: cfg.Devices, MQTTShare: 1, MQTTAddr: m.Addr, ConnectRate: cfg.ConnectRate})
	if err != nil {
		return err
	}
	defer sw.Close()
	var ps Summary
	r.connect(ctx, sw, &ps)
	if !sleepCtx(ctx, cfg.IdleSettle) {
		return ctx.Err()
	}
	after, err := RSS(m.PID)
	if err != nil {
		return err
	}
	mm := &MosquittoMemory{Version: m.Version, PID: m.PID, Connections: sw.Connected(), RSSBeforeMB: before, RSSAfterMB: after}
	if rm, ok := relayMQTTMemory(s.Memory); ok {
		mm.RelayPerDeviceKiB = rm.PerDeviceKiB
	}
	if mm.Connections > 0 {
		mm.PerConnKiB = (after - before) * 1024 / float64(mm.Connections)
	}
	if mm.PerConnKiB > 0 && mm.RelayPerDeviceKiB > 0 {
		mm.Ratio = mm.RelayPerDeviceKiB / mm.PerConnKiB
	}
	s.Memory.Mosquitto = mm
	r.logf("idle (mosquitto): RSS %.1f -> %.1f MB with %d clocks: %.1f KiB per connection (the relay: %.1f KiB per MQTT clock)",
		before, after, mm.Connections, mm.PerConnKiB, mm.RelayPerDeviceKiB)
	for _, f := range ps.Failures {
		s.Failures = append(s.Failures, "mosquitto: "+f)
	}
	sw.Close()
	if err := m.stop(); err != nil {
		s.Failures = append(s.Failures, fmt.Sprintf("mosquitto exited badly: %v", err))
	}
	return nil
}

// idleServer names an idle phase's relay in Summary.Costs: "relay" for
// the main one, "relay-quic" for a QUIC-only one of a mixed run.
func idleServer(main bool, sw *Swarm) string {
	if main {
		return serverRelay
	}
	return serverRelay + "-" + transportName(sw)
}

// idlePhase is one idle measurement on its own relay, which it returns
// stopped; main fills the Summary's relay, connect and transport figures.
// With --floors it adds the relay's row to Summary.Costs.
func (r *runner) idlePhase(ctx context.Context, s *Summary, devices mix, main bool) (*MemoryStats, *target, error) {
	t, err := r.startTarget(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer t.stop()
	if main {
		s.Target = t.addr
	}
	if t.pid == 0 {
		return nil, nil, errors.New("loadtest: idle needs the relay's PID (--target-pid) to read its memory")
	}
	// Let the fresh relay finish starting before the first reading.
	if !sleepCtx(ctx, time.Second) {
		return nil, nil, ctx.Err()
	}
	before, err := RSS(t.pid)
	if err != nil {
		return nil, nil, err
	}
	sw, err := r.newSwarm(t, devices)
	if err != nil {
		return nil, nil, err
	}
	defer sw.Close()
	var ps Summary
	ps.StatusCounts = map[string]uint64{}
	r.connect(ctx, sw, &ps)
	smp := r.meter([]int{t.pid}, 0, &ps)
	defer smp.stop()
	m := smp.mark()
	if !sleepCtx(ctx, r.cfg.IdleSettle) {
		return nil, nil, ctx.Err()
	}
	rd := smp.since(m)
	smp.stop()
	after, err := RSS(t.pid)
	if err != nil {
		return nil, nil, err
	}
	mem := &MemoryStats{
		RSSBeforeMB:     before,
		RSSAfterMB:      after,
		QUICDevices:     sw.Len() - sw.WebTransportDevices() - sw.WebSocketDevices() - sw.MQTTDevices(),
		WebTransDevices: sw.WebTransportDevices(),
		WebSocketDevs:   sw.WebSocketDevices(),
		MQTTDevices:     sw.MQTTDevices(),
	}
	if n := sw.Connected(); n > 0 {
		mem.PerDeviceKiB = (after - before) * 1024 / float64(n)
	}
	if r.costing() {
		c := ServerCost{Server: idleServer(main, sw), PID: t.pid, Sampled: true, Transport: ps.Transport, Devices: ps.Connected}
		if ps.Connect != nil {
			c.HandshakesPS = ps.Connect.HandshakesPS
		}
		c.setRSS(before, after)
		r.costs = append(r.costs, c)
	}
	r.logf("idle (%s): relay RSS %.1f -> %.1f MB with %d devices: %.1f KiB per device", transportName(sw), before, after, sw.Connected(), mem.PerDeviceKiB)
	if main {
		s.Connect, s.Connected, s.Transport = ps.Connect, ps.Connected, ps.Transport
		s.ByTransport = byTransport(sw, nil, nil) // connect times: idle sends no webhook
		rd.record(s)
		s.DurationS = r.cfg.IdleSettle.Seconds()
	}
	s.Failures = append(s.Failures, ps.Failures...)
	s.Warnings = append(s.Warnings, ps.Warnings...)
	sw.Close()
	if err := t.stop(); err != nil {
		s.Failures = append(s.Failures, err.Error())
	}
	return mem, t, nil
}
