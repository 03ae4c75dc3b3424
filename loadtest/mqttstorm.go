package loadtest

// This file is the mqttstorm scenario: stock AWTRIX 3 clocks all logging
// in at once (a city's clocks after a power cut), to a fresh relay and
// then to a fresh mosquitto in the same run, with the CONNACK latency each
// clock saw. No webhooks.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// ScenarioMQTTStorm is MQTT clocks logging in at once, relay and mosquitto.
const ScenarioMQTTStorm = "mqttstorm"

// DefaultMQTTStormClocks is the mqttstorm's Devices default.
const DefaultMQTTStormClocks = 1000

// mqttStormInFlight bounds the storm's logins in flight: every clock at
// once up to this many, the kernel's default listen backlog (somaxconn)
// on recent Linux, so that the generator's own goroutines stay bounded.
const mqttStormInFlight = 4096

type mqttStorm struct{}

func (mqttStorm) info() scenarioInfo { return scenarioInfo{name: ScenarioMQTTStorm} }

// defaults: DefaultMQTTStormClocks clocks, every device an MQTT clock, all
// at once whatever --connect-rate says.
func (mqttStorm) defaults(c *Config) error {
	if c.Devices <= 0 {
		c.Devices = DefaultMQTTStormClocks
	}
	c.MQTTShare, c.WebTransportShare, c.WebSocketShare = 1, 0, 0
	c.ConnectRate = 0
	return nil
}

// run storms the relay, then mosquitto, each fresh and alone on the
// machine.
func (mqttStorm) run(ctx context.Context, r *runner, s *Summary) error {
	cfg := r.cfg
	st := &MQTTStormStats{Clocks: cfg.Devices, InFlight: min(cfg.Devices, mqttStormInFlight)}
	s.MQTTStorm = st

	t, err := r.startTarget(ctx)
	if err != nil {
		return err
	}
	defer t.stop()
	s.Target = t.addr
	if t.proc != nil {
		st.RelayLimits = mqttLimits(t.proc.Args)
	} else {
		st.RelayLimits = "a --target relay: its own limits (the suite did not start it)"
	}
	if !sleepCtx(ctx, time.Second) { // let the fresh relay finish starting
		return ctx.Err()
	}
	var cs *ConnectStats
	st.Relay, cs, err = r.stormSide(ctx, s, serverRelay, t.mqtt, t.pid)
	if err != nil {
		return err
	}
	s.Connect, s.Connected, s.Transport = cs, st.Relay.Connected, TransportMQTT
	if err := t.stop(); err != nil {
		s.Failures = append(s.Failures, err.Error())
	}
	r.logf("mqttstorm (relay): %s", stormLine(st.Relay))

	dir, err := os.MkdirTemp(r.dir, "mosquitto-")
	if err != nil {
		return err
	}
	m, err := startMosquitto(ctx, dir, r.pin.child("mosquitto"))
	if err != nil {
		return err
	}
	defer m.stop()
	r.logf("mosquitto: %s, pid %d on %s", m.Version, m.PID, m.Addr)
	if !sleepCtx(ctx, time.Second) {
		return ctx.Err()
	}
	if st.Mosquitto, _, err = r.stormSide(ctx, s, m.Version, m.Addr, m.PID); err != nil {
		return err
	}
	if err := m.stop(); err != nil {
		s.Failures = append(s.Failures, fmt.Sprintf("mosquitto exited badly: %v", err))
	}
	r.logf("mqttstorm (mosquitto): %s", stormLine(st.Mosquitto))
	s.DurationS = st.Relay.AllLoggedInS + st.Mosquitto.AllLoggedInS
	return ctx.Err()
}

// stormSide logs Config.Devices clocks in at addr at once, and measures
// it at the clocks (and, its PID known, the broker's CPU and RSS). A
// clock that did not log in within Config.ConnectTimeout fails the run.
func (r *runner) stormSide(ctx context.Context, s *Summary, server, addr string, pid int) (MQTTStormSide, *ConnectStats, error) {
	cfg := r.cfg
	side := MQTTStormSide{Server: server, PID: pid}
	sw, err := NewSwarm(SwarmConfig{Devices: cfg.Devices, MQTTShare: 1, MQTTAddr: addr, ConnectConcurrency: min(cfg.Devices, mqttStormInFlight)})
	if err != nil {
		return side, nil, err
	}
	defer sw.Close()
	var ticks uint64
	if pid != 0 {
		if ticks, err = readTicks(pid); err != nil {
			pid = 0
		}
	}
	var ps Summary
	r.connect(ctx, sw, &ps)
	if ctx.Err() != nil {
		return side, nil, ctx.Err()
	}
	if pid != 0 {
		if now, err := readTicks(pid); err == nil {
			side.CPUS = float64(now-ticks) / float64(clockTicks())
		}
		if mb, err := RSS(pid); err == nil {
			side.RSSMB = mb
		}
	}
	cs := ps.Connect
	side.Connected, side.Failed, side.DialErrors = cs.Devices-cs.Failed, cs.Failed, cs.DialErrors
	side.AllLoggedInS, side.ConnectsPS = cs.AllConnectedS, cs.HandshakesPS
	side.ReadyP50MS, side.ReadyP99MS = cs.P50MS, cs.P99MS
	acks := sw.ConnackTimes()
	slices.Sort(acks)
	if len(acks) > 0 {
		side.ConnackP50MS = millis(quantile(acks, 0.50))
		side.ConnackP99MS = millis(quantile(acks, 0.99))
		side.ConnackMaxMS = millis(acks[len(acks)-1])
	}
	for _, f := range ps.Failures {
		s.Failures = append(s.Failures, server+": "+f)
	}
	if n, errs := sw.DialErrors(); n > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%s: %d logins failed during the storm and were retried with backoff (%s): "+
			"a clock's CONNACK latency is its successful login's, its wait before counts in the time for all", server, n, strings.Join(errs, "; ")))
	}
	return side, cs, nil
}

// mqttLimits describes the started relay's MQTT connect limits from its
// command line: the suite turns the per-source rate off (limitsOff), which
// the operator's --relay-flag may turn back on.
func mqttLimits(args []string) string {
	rate, _ := lastFlag(args, "mqtt-connect-ip-rate")
	burst, hasBurst := lastFlag(args, "mqtt-connect-ip-burst")
	if rate == "0" || burst == "0" {
		return "per-source MQTT connect limit off (--mqtt-connect-ip-rate 0): every clock comes from 127.0.0.1, " +
			"where the default 50/s after a burst of 200 would close all but the first 200 of a storm"
	}
	if rate == "" {
		rate = "50 (default)"
	}
	if !hasBurst {
		burst = "200 (default)"
	}
	return fmt.Sprintf("per-source MQTT connect limit on: --mqtt-connect-ip-rate %s, --mqtt-connect-ip-burst %s; every clock comes from 127.0.0.1, "+
		"so logins past the burst are closed and retried with backoff", rate, burst)
}

// stormLine is one side's figures for the log.
func stormLine(d MQTTStormSide) string {
	return fmt.Sprintf("%d/%d clocks logged in in %s s (%s/s); CONNACK p50 %s ms, p99 %s ms, max %s ms; subscribed p50 %s ms, p99 %s ms; CPU %s s, RSS %s MB",
		d.Connected, d.Connected+d.Failed, secs(d.AllLoggedInS), num(d.ConnectsPS), ms(d.ConnackP50MS), ms(d.ConnackP99MS), ms(d.ConnackMaxMS),
		ms(d.ReadyP50MS), ms(d.ReadyP99MS), secs(d.CPUS), num1(d.RSSMB))
}
