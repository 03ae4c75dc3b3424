package loadtest

// This file is the arithmetic of the cost comparison (Summary.Costs):
// per-unit figures from what was sampled, the floor a mixed swarm is
// compared with, and relay minus floor.

import (
	"math"
	"time"
)

// Server names in CostStats besides the floors' (floorName).
const (
	serverRelay    = "relay"
	serverBaseline = "baseline"
	serverFloorMix = "floor-mix"
)

// rssSettle is how long a freshly started server sits before its RSS is
// read as "before the devices": the same for the relay and the floors.
const rssSettle = time.Second

// cpuSeconds is the CPU time a ProcessStats' mean covers.
func cpuSeconds(ps ProcessStats) float64 { return ps.CPUPercent / 100 * ps.wall.Seconds() }

// perWebhookUS is CPU seconds per webhook in µs; 0 without webhooks.
func perWebhookUS(cpuS float64, webhooks uint64) float64 {
	if webhooks == 0 {
		return 0
	}
	return cpuS / float64(webhooks) * 1e6
}

// perDeviceKiB is the RSS growth (MiB) per device in KiB; 0 without
// devices.
func perDeviceKiB(beforeMB, afterMB float64, devices int) float64 {
	if devices <= 0 {
		return 0
	}
	return (afterMB - beforeMB) * 1024 / float64(devices)
}

// setCPU records the CPU time of an attack that answered webhooks.
func (c *ServerCost) setCPU(cpuS float64, webhooks uint64) {
	c.CPUS, c.Webhooks = cpuS, webhooks
	c.CPUPerWebhookUS = perWebhookUS(cpuS, webhooks)
}

// setRSS records the RSS before and with the devices.
func (c *ServerCost) setRSS(beforeMB, afterMB float64) {
	c.RSSBeforeMB, c.RSSAfterMB = beforeMB, afterMB
	c.RSSPerDeviceKiB = perDeviceKiB(beforeMB, afterMB, c.Devices)
}

// mixFloors is the floor of a swarm spread over several transports, with
// weights[i] of its devices on floors[i]'s: what the floors would cost for
// it if each device and webhook costs what it does on its own floor. CPU
// per webhook and RSS per device are weighted means (webhooks are spread
// over devices evenly); handshakes per second the weighted harmonic mean
// (the time per handshake is what adds up).
func mixFloors(floors []ServerCost, weights []float64) ServerCost {
	mean := func(f func(ServerCost) float64) float64 {
		v := 0.0
		for i, c := range floors {
			v += weights[i] * f(c)
		}
		return v
	}
	m := ServerCost{
		Server:          serverFloorMix,
		Derived:         true,
		Sampled:         true,
		Transport:       TransportMixed,
		Devices:         floors[0].Devices,
		CPUPerWebhookUS: mean(func(c ServerCost) float64 { return c.CPUPerWebhookUS }),
		RSSPerDeviceKiB: mean(func(c ServerCost) float64 { return c.RSSPerDeviceKiB }),
		Latency: LatencyMS{
			P50:  mean(func(c ServerCost) float64 { return c.Latency.P50 }),
			P90:  mean(func(c ServerCost) float64 { return c.Latency.P90 }),
			P99:  mean(func(c ServerCost) float64 { return c.Latency.P99 }),
			Mean: mean(func(c ServerCost) float64 { return c.Latency.Mean }),
		},
	}
	perHandshake := 0.0
	for i, c := range floors {
		m.Sampled = m.Sampled && c.Sampled
		m.Latency.Max = max(m.Latency.Max, c.Latency.Max)
		if c.CPUPerWebhookUS == 0 {
			m.CPUPerWebhookUS = 0 // one side had no attack: unknown
		}
		if c.HandshakesPS <= 0 {
			perHandshake = math.Inf(1)
		} else {
			perHandshake += weights[i] / c.HandshakesPS
		}
	}
	if !math.IsInf(perHandshake, 1) && perHandshake > 0 {
		m.HandshakesPS = 1 / perHandshake
	}
	return m
}

// matchingFloor is the floor the relay is compared with: the floor of its
// swarm's transport, or the floors of its transports weighted for a swarm
// on several; nil when a floor it needs did not run.
func matchingFloor(m mix, servers []ServerCost) *ServerCost {
	ts := transportsOf(m)
	floors := make([]ServerCost, len(ts))
	weights := make([]float64, len(ts))
	for i, t := range ts {
		f, ok := findCost(servers, floorName(t))
		if !ok {
			return nil
		}
		floors[i], weights[i] = f, m.share(t)
	}
	if len(floors) == 1 {
		return &floors[0]
	}
	f := mixFloors(floors, weights)
	return &f
}

func findCost(servers []ServerCost, name string) (ServerCost, bool) {
	for _, c := range servers {
		if c.Server == name {
			return c, true
		}
	}
	return ServerCost{}, false
}

// overhead is relay minus floor. A figure either side lacks (0, or not
// sampled) stays 0, and so does its ratio.
func overhead(relay, floor ServerCost) CostDelta {
	var d CostDelta
	ratio := func(a, b float64) float64 {
		if a == 0 || b == 0 {
			return 0
		}
		return a / b
	}
	if relay.Sampled && floor.Sampled {
		if relay.CPUPerWebhookUS > 0 && floor.CPUPerWebhookUS > 0 {
			d.CPUPerWebhookUS = relay.CPUPerWebhookUS - floor.CPUPerWebhookUS
			d.CPURatio = ratio(relay.CPUPerWebhookUS, floor.CPUPerWebhookUS)
		}
		if relay.Devices > 0 && floor.Devices > 0 {
			d.RSSPerDeviceKiB = relay.RSSPerDeviceKiB - floor.RSSPerDeviceKiB
			d.RSSRatio = ratio(relay.RSSPerDeviceKiB, floor.RSSPerDeviceKiB)
		}
	}
	if relay.HandshakesPS > 0 && floor.HandshakesPS > 0 {
		d.HandshakesPS = relay.HandshakesPS - floor.HandshakesPS
		d.HandshakesRatio = ratio(relay.HandshakesPS, floor.HandshakesPS)
	}
	if relay.Latency.P50 > 0 && floor.Latency.P50 > 0 {
		d.P50MS = relay.Latency.P50 - floor.Latency.P50
		d.P99MS = relay.Latency.P99 - floor.Latency.P99
	}
	return d
}

// costStats assembles the comparison from the servers measured; nil when
// there is nothing to compare the relay with.
func costStats(servers []ServerCost, m mix) *CostStats {
	relay, ok := findCost(servers, serverRelay)
	if !ok || len(servers) < 2 {
		return nil
	}
	cs := &CostStats{Servers: servers, WebTransportShare: m.wt, WebSocketShare: m.ws}
	if f := matchingFloor(m, servers); f != nil {
		d := overhead(relay, *f)
		cs.Floor, cs.Overhead = f, &d
	}
	return cs
}
