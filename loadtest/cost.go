package loadtest

// This file is the arithmetic of the cost comparison (Summary.Costs):
// per-unit figures from what was sampled, the floor a mixed swarm is
// compared with, and relay minus floor.

import "time"

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

// mixFloors is the floor of a swarm with a share of WebTransport devices:
// what the QUIC floor q and the WebTransport floor w would cost for it if
// each device and webhook costs what it does on its own floor. CPU per
// webhook and RSS per device are weighted means (webhooks are spread over
// devices evenly); handshakes per second the weighted harmonic mean (the
// time per handshake is what adds up).
func mixFloors(q, w ServerCost, share float64) ServerCost {
	mean := func(a, b float64) float64 { return (1-share)*a + share*b }
	m := ServerCost{
		Server:          serverFloorMix,
		Derived:         true,
		Sampled:         q.Sampled && w.Sampled,
		Transport:       "mixed",
		Devices:         q.Devices,
		CPUPerWebhookUS: mean(q.CPUPerWebhookUS, w.CPUPerWebhookUS),
		RSSPerDeviceKiB: mean(q.RSSPerDeviceKiB, w.RSSPerDeviceKiB),
		Latency: LatencyMS{
			P50: mean(q.Latency.P50, w.Latency.P50), P90: mean(q.Latency.P90, w.Latency.P90),
			P99: mean(q.Latency.P99, w.Latency.P99), Max: max(q.Latency.Max, w.Latency.Max),
			Mean: mean(q.Latency.Mean, w.Latency.Mean),
		},
	}
	if q.CPUPerWebhookUS == 0 || w.CPUPerWebhookUS == 0 {
		m.CPUPerWebhookUS = 0 // one side had no attack: unknown
	}
	if q.HandshakesPS > 0 && w.HandshakesPS > 0 {
		m.HandshakesPS = 1 / ((1-share)/q.HandshakesPS + share/w.HandshakesPS)
	}
	return m
}

// matchingFloor is the floor the relay is compared with: the floor of its
// swarm's transport, or both weighted for a mixed swarm; nil when that
// floor did not run.
func matchingFloor(share float64, servers []ServerCost) *ServerCost {
	q, hasQ := findCost(servers, floorName(FloorQUIC))
	w, hasW := findCost(servers, floorName(FloorWebTransport))
	switch {
	case share <= 0 && hasQ:
		return &q
	case share >= 1 && hasW:
		return &w
	case share > 0 && share < 1 && hasQ && hasW:
		m := mixFloors(q, w, share)
		return &m
	}
	return nil
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
func costStats(servers []ServerCost, share float64) *CostStats {
	relay, ok := findCost(servers, serverRelay)
	if !ok || len(servers) < 2 {
		return nil
	}
	cs := &CostStats{Servers: servers, WebTransportShare: share}
	if f := matchingFloor(share, servers); f != nil {
		d := overhead(relay, *f)
		cs.Floor, cs.Overhead = f, &d
	}
	return cs
}
