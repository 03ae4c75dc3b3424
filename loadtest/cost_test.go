package loadtest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }

func TestPerUnit(t *testing.T) {
	if got := perWebhookUS(0.5, 1000); !near(got, 500) {
		t.Errorf("0.5 CPU s over 1000 webhooks = %v µs, want 500", got)
	}
	if got := perWebhookUS(0.5, 0); got != 0 {
		t.Errorf("no webhooks: %v, want 0", got)
	}
	if got := perDeviceKiB(100, 110, 1024); !near(got, 10) {
		t.Errorf("10 MiB over 1024 devices = %v KiB, want 10", got)
	}
	if got := perDeviceKiB(100, 110, 0); got != 0 {
		t.Errorf("no devices: %v, want 0", got)
	}
	ps := ProcessStats{CPUPercent: 50, wall: 4 * time.Second}
	if got := cpuSeconds(ps); !near(got, 2) {
		t.Errorf("50%% over 4 s = %v CPU s, want 2", got)
	}
}

func TestMixFloors(t *testing.T) {
	q := ServerCost{Server: "floor-quic", Sampled: true, Devices: 100, CPUPerWebhookUS: 100, RSSPerDeviceKiB: 40, HandshakesPS: 400,
		Latency: LatencyMS{P50: 1, P90: 2, P99: 4, Max: 10, Mean: 1.5}}
	w := ServerCost{Server: "floor-webtransport", Sampled: true, Devices: 100, CPUPerWebhookUS: 200, RSSPerDeviceKiB: 80, HandshakesPS: 100,
		Latency: LatencyMS{P50: 3, P90: 4, P99: 8, Max: 20, Mean: 3.5}}
	m := mixFloors([]ServerCost{q, w}, []float64{0.75, 0.25})
	if m.Server != serverFloorMix || !m.Derived || !m.Sampled || m.Transport != "mixed" || m.Devices != 100 {
		t.Errorf("mix row %+v", m)
	}
	if !near(m.CPUPerWebhookUS, 125) || !near(m.RSSPerDeviceKiB, 50) {
		t.Errorf("CPU %v µs, RSS %v KiB: want the weighted means 125 and 50", m.CPUPerWebhookUS, m.RSSPerDeviceKiB)
	}
	// 0.75/400 + 0.25/100 = 0.004375 s per handshake.
	if !near(m.HandshakesPS, 1/0.004375) {
		t.Errorf("handshakes %v/s, want the weighted harmonic mean %v", m.HandshakesPS, 1/0.004375)
	}
	if !near(m.Latency.P50, 1.5) || !near(m.Latency.P99, 5) || m.Latency.Max != 20 {
		t.Errorf("latency %+v: want p50 1.5, p99 5, max 20", m.Latency)
	}

	// A side without an attack or handshakes leaves the figure unknown,
	// not half of the other.
	w.CPUPerWebhookUS, w.HandshakesPS, w.Sampled = 0, 0, false
	m = mixFloors([]ServerCost{q, w}, []float64{0.75, 0.25})
	if m.CPUPerWebhookUS != 0 || m.HandshakesPS != 0 || m.Sampled {
		t.Errorf("one side unknown: CPU %v, handshakes %v, sampled %v; want 0, 0, false", m.CPUPerWebhookUS, m.HandshakesPS, m.Sampled)
	}
}

func TestOverhead(t *testing.T) {
	relay := ServerCost{Server: serverRelay, Sampled: true, Devices: 10, CPUPerWebhookUS: 300, RSSPerDeviceKiB: 90, HandshakesPS: 300,
		Latency: LatencyMS{P50: 2, P99: 20}}
	floor := ServerCost{Server: "floor-quic", Sampled: true, Devices: 10, CPUPerWebhookUS: 100, RSSPerDeviceKiB: 30, HandshakesPS: 600,
		Latency: LatencyMS{P50: 0.5, P99: 5}}
	d := overhead(relay, floor)
	want := CostDelta{CPUPerWebhookUS: 200, CPURatio: 3, RSSPerDeviceKiB: 60, RSSRatio: 3, HandshakesPS: -300, HandshakesRatio: 0.5, P50MS: 1.5, P99MS: 15}
	if d != want {
		t.Errorf("overhead\n got %+v\nwant %+v", d, want)
	}

	// The floor not sampled (in this process): no CPU or RSS difference,
	// but handshakes and latency, which the generator measures, remain.
	f := floor
	f.Sampled = false
	d = overhead(relay, f)
	if d.CPUPerWebhookUS != 0 || d.CPURatio != 0 || d.RSSPerDeviceKiB != 0 || d.RSSRatio != 0 {
		t.Errorf("floor not sampled: %+v; want no CPU or RSS figures", d)
	}
	if d.HandshakesRatio != 0.5 || d.P99MS != 15 {
		t.Errorf("floor not sampled: %+v; want handshakes and latency kept", d)
	}

	// No attack (idle): CPU and latency unknown, RSS and handshakes kept.
	r, f := relay, floor
	r.CPUPerWebhookUS, r.Latency, f.CPUPerWebhookUS, f.Latency = 0, LatencyMS{}, 0, LatencyMS{}
	d = overhead(r, f)
	if d.CPURatio != 0 || d.P50MS != 0 || d.RSSRatio != 3 || d.HandshakesRatio != 0.5 {
		t.Errorf("idle: %+v", d)
	}

	// No devices on one side: no RSS figure.
	f = floor
	f.Devices = 0
	if d := overhead(relay, f); d.RSSRatio != 0 || d.RSSPerDeviceKiB != 0 {
		t.Errorf("floor without devices: %+v", d)
	}
}

func TestCostStats(t *testing.T) {
	relay := ServerCost{Server: serverRelay, Sampled: true, Devices: 10, CPUPerWebhookUS: 300, RSSPerDeviceKiB: 90}
	q := ServerCost{Server: floorName(FloorQUIC), Sampled: true, Devices: 10, CPUPerWebhookUS: 100, RSSPerDeviceKiB: 30}
	w := ServerCost{Server: floorName(FloorWebTransport), Sampled: true, Devices: 10, CPUPerWebhookUS: 200, RSSPerDeviceKiB: 60}
	base := ServerCost{Server: serverBaseline, Sampled: true, CPUPerWebhookUS: 20}

	if cs := costStats(nil, mix{}); cs != nil {
		t.Errorf("nothing measured: %+v, want nil", cs)
	}
	if cs := costStats([]ServerCost{relay}, mix{}); cs != nil {
		t.Errorf("the relay alone: %+v, want nil (nothing to compare)", cs)
	}
	if cs := costStats([]ServerCost{q, base}, mix{}); cs != nil {
		t.Errorf("no relay: %+v, want nil", cs)
	}

	cs := costStats([]ServerCost{relay, q, base}, mix{})
	if cs == nil || cs.Floor == nil || cs.Floor.Server != q.Server || cs.Overhead == nil || cs.Overhead.CPURatio != 3 {
		t.Fatalf("QUIC swarm: %+v", cs)
	}
	if len(cs.Servers) != 3 {
		t.Errorf("servers %+v", cs.Servers)
	}

	cs = costStats([]ServerCost{relay, w, base}, mix{wt: 1})
	if cs == nil || cs.Floor == nil || cs.Floor.Server != w.Server || cs.Overhead.CPURatio != 1.5 {
		t.Fatalf("WebTransport swarm: %+v", cs)
	}

	// A mixed swarm compares with both floors weighted.
	cs = costStats([]ServerCost{relay, q, w, base}, mix{wt: 0.5})
	if cs == nil || cs.Floor == nil || cs.Floor.Server != serverFloorMix || !cs.Floor.Derived || !near(cs.Overhead.CPURatio, 2) {
		t.Fatalf("mixed swarm: %+v floor %+v", cs, cs.Floor)
	}
	// ... and with no floor when one of them is missing.
	cs = costStats([]ServerCost{relay, q, base}, mix{wt: 0.5})
	if cs == nil || cs.Floor != nil || cs.Overhead != nil {
		t.Fatalf("mixed swarm, one floor: %+v", cs)
	}
	// Three transports: each floor weighted by its share.
	ws := ServerCost{Server: floorName(FloorWebSocket), Sampled: true, Devices: 10, CPUPerWebhookUS: 60, RSSPerDeviceKiB: 20}
	cs = costStats([]ServerCost{relay, q, w, ws, base}, mix{wt: 0.25, ws: 0.25})
	if cs == nil || cs.Floor == nil || !near(cs.Floor.CPUPerWebhookUS, 0.5*100+0.25*200+0.25*60) ||
		!near(cs.Floor.RSSPerDeviceKiB, 0.5*30+0.25*60+0.25*20) || cs.WebSocketShare != 0.25 {
		t.Fatalf("three transports: %+v floor %+v", cs, cs.Floor)
	}
	if cs = costStats([]ServerCost{relay, q, w, base}, mix{wt: 0.25, ws: 0.25}); cs == nil || cs.Floor != nil {
		t.Fatalf("three transports, no WebSocket floor: %+v", cs)
	}
	cs = costStats([]ServerCost{relay, ws, base}, mix{ws: 1})
	if cs == nil || cs.Floor == nil || cs.Floor.Server != ws.Server || cs.Overhead.CPURatio != 5 {
		t.Fatalf("WebSocket swarm: %+v", cs)
	}
	// The relay against the baseline alone: a table, no overhead.
	cs = costStats([]ServerCost{relay, base}, mix{})
	if cs == nil || cs.Floor != nil || cs.Overhead != nil {
		t.Fatalf("baseline only: %+v", cs)
	}
}

func TestCostReport(t *testing.T) {
	relay := ServerCost{Server: serverRelay, Sampled: true, Transport: "mixed", Devices: 10, CPUPerWebhookUS: 300, RSSPerDeviceKiB: 90,
		HandshakesPS: 50, Latency: LatencyMS{P50: 2, P99: 20}}
	q := ServerCost{Server: floorName(FloorQUIC), Sampled: true, Transport: "quic", Devices: 10, CPUPerWebhookUS: 100, RSSPerDeviceKiB: 30,
		HandshakesPS: 100, Latency: LatencyMS{P50: 1, P99: 4}}
	w := ServerCost{Server: floorName(FloorWebTransport), Transport: "webtransport", Devices: 10, HandshakesPS: 100, Latency: LatencyMS{P50: 1, P99: 4}}
	base := ServerCost{Server: serverBaseline, Sampled: true, CPUPerWebhookUS: 20, Latency: LatencyMS{P50: 0.2, P99: 1}}
	cs := costStats([]ServerCost{relay, q, w, base}, mix{wt: 0.5})
	rows := costRows(cs)
	var names []string
	for _, r := range rows {
		names = append(names, r.Server)
	}
	if got := strings.Join(names, " "); got != "relay floor-quic floor-webtransport floor-mix baseline" {
		t.Errorf("rows %s", got)
	}
	var b strings.Builder
	printCosts(&b, cs)
	out := b.String()
	for _, want := range []string{"floor-mix (derived)", "relay overhead (relay − floor-mix): ", "handshakes −50/s (ratio 0.50)", "p50 +1.00 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("cost table lacks %q:\n%s", want, out)
		}
	}
	// floor-webtransport was not sampled, so neither is the mix: no CPU
	// or RSS difference may be printed.
	if strings.Contains(out, "CPU +") || strings.Contains(out, "RSS +") {
		t.Errorf("CPU or RSS overhead printed from an unsampled floor:\n%s", out)
	}
}

func TestPaceOf(t *testing.T) {
	for _, c := range []struct {
		rate float64
		freq int
		per  time.Duration
	}{
		{2000, 2000, time.Second},
		{1, 1, time.Second},
		{33.3, 1, 30030030}, // 1 s / 33.3, truncated to the ns
		{0.5, 1, 2 * time.Second},
		{1.0 / 600, 1, 600 * time.Second},
		{0, 1, time.Second},
	} {
		p := paceOf(c.rate)
		if p.Freq != c.freq || p.Per != c.per {
			t.Errorf("paceOf(%v) = %d per %v, want %d per %v", c.rate, p.Freq, p.Per, c.freq, c.per)
		}
		if c.rate > 0 {
			if got := float64(p.Freq) / p.Per.Seconds(); !near(got, c.rate) && math.Abs(got-c.rate) > 1e-6 {
				t.Errorf("paceOf(%v) paces %v/s", c.rate, got)
			}
		}
	}
}

func TestFleetDerive(t *testing.T) {
	fs := &FleetStats{
		Devices:          2000,
		WebhookRate:      2000.0 / 600,
		RSSBeforeMB:      20,
		RSSWithDevicesMB: 160, // 70 MB per 1,000
		BaseCPUPercent:   0.5,
		IdleCPUPercent:   2.5, // 1% per 1,000 for keep-alives
		SteadyCPUPercent: 4.5,
		Webhooks:         200, // 60 s at 3.33/s
	}
	fs.derive(60 * time.Second)
	if !near(fs.WebhookEveryS, 600) || !near(fs.RSSPer1000MB, 70) || !near(fs.KeepAliveCPUPer1000Percent, 1) || !near(fs.CPUPer1000Percent, 2) {
		t.Errorf("per 1,000: %+v", fs)
	}
	// 2% of a core over 60 s is 1.2 CPU s for 200 webhooks: 6,000 µs each.
	if !near(fs.CPUPerWebhookUS, 6000) {
		t.Errorf("CPU per webhook %v µs, want 6000", fs.CPUPerWebhookUS)
	}
	if len(fs.Projections) != 2 {
		t.Fatalf("projections %+v", fs.Projections)
	}
	p := fs.Projections[0]
	// 100,000 devices: 166.7 webhooks/s; 20 + 70*100 MB; 0.5 + 2*100 % (keep-alives
	// 1 and webhooks 166.7*6000/1e4/100 = 1 per 1,000).
	if p.Devices != 100_000 || !near(p.WebhooksPS, 100_000.0/600) || !near(p.RSSMB, 7020) || !near(p.CPUPercent, 0.5+2*100) {
		t.Errorf("projection %+v", p)
	}
	// At the measured size the projection gives back the measurement.
	if got := fs.project(2000); !near(got.RSSMB, fs.RSSWithDevicesMB) || !near(got.CPUPercent, fs.SteadyCPUPercent) {
		t.Errorf("projection at the measured size %+v, want RSS %v and CPU %v", got, fs.RSSWithDevicesMB, fs.SteadyCPUPercent)
	}

	// Noise below the base counts as nothing, never as a saving.
	fs = &FleetStats{Devices: 1000, WebhookRate: 1, RSSBeforeMB: 20, RSSWithDevicesMB: 19, BaseCPUPercent: 1, IdleCPUPercent: 0.5, SteadyCPUPercent: 0.8, Webhooks: 10}
	fs.derive(10 * time.Second)
	if fs.RSSPer1000MB != 0 || fs.KeepAliveCPUPer1000Percent != 0 || fs.CPUPer1000Percent != 0 || !near(fs.CPUPerWebhookUS, 3000) {
		t.Errorf("noisy windows: %+v", fs)
	}
}

func TestPickCPUs(t *testing.T) {
	for _, allowed := range [][]int{nil, {3}} {
		if _, _, err := pickCPUs(allowed); err == nil || !strings.Contains(err.Error(), "at least 2 CPUs") {
			t.Errorf("pickCPUs(%v): %v, want an error naming the 2 CPUs needed", allowed, err)
		}
	}
	s, g, err := pickCPUs([]int{2, 5, 7})
	if err != nil || s != 2 || g != 5 {
		t.Errorf("pickCPUs(2 5 7) = %d, %d, %v; want 2, 5", s, g, err)
	}
}

func TestFleetReport(t *testing.T) {
	fs := &FleetStats{Devices: 2000, ConnectRate: 500, WebhookRate: 2000.0 / 600, KeepAliveS: 20, IdleS: 30, SteadyS: 300,
		RSSBeforeMB: 16.2, RSSWithDevicesMB: 164.5, RSSEndMB: 172, BaseCPUPercent: 0.1, IdleCPUPercent: 1.1, SteadyCPUPercent: 3.1, Webhooks: 1000}
	fs.derive(300 * time.Second)
	var b strings.Builder
	printFleet(&b, fs)
	out := b.String()
	var lines []string // each with its spaces collapsed
	for l := range strings.Lines(out) {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	for _, want := range []string{
		"measured 2000 3.33 164 3.1",
		"projection, linear, not measured 100000 167 7431 150",
		"projection, linear, not measured 1000000 1667 74166 1500",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("fleet table lacks the row %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "74.2 MB per 1,000 devices") {
		t.Errorf("fleet figures lack the RSS per 1,000 devices:\n%s", out)
	}
	var md strings.Builder
	writeFleetMD(func(f string, a ...any) { fmt.Fprintf(&md, f, a...) }, fs)
	if !strings.Contains(md.String(), "| projection, linear, not measured | 1000000 | 1667 |") {
		t.Errorf("report.md's fleet table:\n%s", md.String())
	}
}
