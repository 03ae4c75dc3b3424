package loadtest

// This file reports the cost comparison (Summary.Costs: the relay, its
// floors and the baseline), the fleet scenario and the CPU placement, in
// report.md and on the terminal.

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// unknown stands for a figure that was not measured.
const unknown = "–"

// costCells are one server's figures as text, unknown where not measured:
// CPU and RSS need the process sampled (its own process), RSS devices, CPU
// and latency an attack.
func costCells(c ServerCost) (cpu, rss, hs, p50, p99 string) {
	cpu, rss, hs, p50, p99 = unknown, unknown, unknown, unknown, unknown
	if c.Sampled && c.CPUPerWebhookUS > 0 {
		cpu = num1(c.CPUPerWebhookUS)
	}
	if c.Sampled && c.Devices > 0 {
		rss = num1(c.RSSPerDeviceKiB)
	}
	if c.HandshakesPS > 0 {
		hs = num(c.HandshakesPS)
	}
	if c.Latency.P50 > 0 {
		p50, p99 = ms(c.Latency.P50), ms(c.Latency.P99)
	}
	return cpu, rss, hs, p50, p99
}

// costServerName marks a derived row.
func costServerName(c ServerCost) string {
	if c.Derived {
		return c.Server + " (derived)"
	}
	return c.Server
}

// costRows are the table's rows: the servers measured, and the derived
// floor-mix right after the floors it comes from.
func costRows(cs *CostStats) []ServerCost {
	rows := slices.Clone(cs.Servers)
	if cs.Floor == nil || !cs.Floor.Derived {
		return rows
	}
	at := len(rows)
	for i, c := range rows {
		if strings.HasPrefix(c.Server, floorName("")) {
			at = i + 1
		}
	}
	return slices.Insert(rows, at, *cs.Floor)
}

// overheadText is the relay's overhead over its floor in one line; the
// figures either side lacks are left out.
func overheadText(cs *CostStats) string {
	if cs.Floor == nil || cs.Overhead == nil {
		return "relay overhead: no floor ran for the relay's transport"
	}
	d := cs.Overhead
	var parts []string
	if d.CPURatio > 0 {
		parts = append(parts, fmt.Sprintf("CPU %s µs/webhook (ratio %s)", signedNum1(d.CPUPerWebhookUS), ratio(d.CPURatio)))
	}
	if d.RSSRatio > 0 {
		parts = append(parts, fmt.Sprintf("RSS %s KiB/device (ratio %s)", signedNum1(d.RSSPerDeviceKiB), ratio(d.RSSRatio)))
	}
	if d.HandshakesRatio > 0 {
		parts = append(parts, fmt.Sprintf("handshakes %s/s (ratio %s)", signedNum(d.HandshakesPS), ratio(d.HandshakesRatio)))
	}
	if relay, ok := findCost(cs.Servers, serverRelay); ok && relay.Latency.P50 > 0 && cs.Floor.Latency.P50 > 0 {
		parts = append(parts, fmt.Sprintf("p50 %s ms, p99 %s ms", signedMS(d.P50MS), signedMS(d.P99MS)))
	}
	head := fmt.Sprintf("relay overhead (relay − %s): ", cs.Floor.Server)
	if len(parts) == 0 {
		return head + "no figure was measured on both sides"
	}
	return head + strings.Join(parts, ", ")
}

func signedNum(v float64) string {
	if v >= 0 {
		return "+" + num(v)
	}
	return "−" + num(-v)
}

// printCosts writes the cost table for a terminal.
func printCosts(w io.Writer, cs *CostStats) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\ttransport\tdevices\tCPU µs/webhook\tRSS KiB/device\thandshakes/s\tp50 ms\tp99 ms\t")
	for _, c := range costRows(cs) {
		cpu, rss, hs, p50, p99 := costCells(c)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", costServerName(c), orDefault(c.Transport, unknown),
			devicesCell(c), cpu, rss, hs, p50, p99)
	}
	tw.Flush()
	fmt.Fprintln(w, overheadText(cs))
	fmt.Fprintln(w, "(– not measured: no devices, no attack, or a server in this process that cannot be sampled apart)")
}

func devicesCell(c ServerCost) string {
	if c.Devices == 0 {
		return unknown
	}
	return strconv.Itoa(c.Devices)
}

// writeCostsMD writes the cost comparison into report.md.
func writeCostsMD(p func(string, ...any), cs *CostStats) {
	p("## Relay vs its floors\n\n")
	p("Each floor is a bare server doing only the device leg of the relay's work: a quic-go (floor-quic), " +
		"webtransport-go (floor-webtransport) or fasthttp/websocket (floor-websocket) device server with a fasthttp TLS webhook frontend, a map from token to " +
		"connection, and no limits, metrics or cluster. Each ran after the relay, in a process of its own, with a fresh " +
		"swarm of the same size and the same attack. Relay minus floor is what the relay's own machinery costs. " +
		"The baseline has no devices: TLS and HTTP only. CPU per webhook is the process's CPU time over the attack " +
		"divided by the webhooks answered 2xx; RSS per device is the growth from no devices to all connected and settled.\n\n")
	if cs.Floor != nil && cs.Floor.Derived {
		p("The swarm was mixed (%s WebTransport, %s WebSocket, the rest raw QUIC): floor-mix weighs its transports' floors by "+
			"those shares; it is derived, not measured.\n\n", ratioPct(cs.WebTransportShare), ratioPct(cs.WebSocketShare))
	}
	p("| Server | Transport | Devices | CPU µs/webhook | RSS KiB/device | Handshakes/s | p50 ms | p99 ms |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range costRows(cs) {
		cpu, rss, hs, p50, p99 := costCells(c)
		p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", mdText(costServerName(c)), mdText(orDefault(c.Transport, unknown)),
			devicesCell(c), cpu, rss, hs, p50, p99)
	}
	p("\n%s.\n\n", mdText(overheadText(cs)))
	p("– is not measured: no devices, no attack, or a server that ran in the generator's process.\n\n")
}

// Labels of the fleet table's rows.
const (
	fleetMeasured  = "measured"
	fleetProjected = "projection, linear, not measured"
)

// fleetRows are the fleet's measured row and its projections: what the
// row is, devices, webhooks/s, RSS MB and CPU %.
func fleetRows(fs *FleetStats) [][5]string {
	rows := [][5]string{{fleetMeasured, strconv.Itoa(fs.Devices), sig3(fs.WebhookRate), num(fs.RSSWithDevicesMB), pct(fs.SteadyCPUPercent)}}
	for _, pr := range fs.Projections {
		rows = append(rows, [5]string{fleetProjected, strconv.Itoa(pr.Devices), sig3(pr.WebhooksPS), num(pr.RSSMB), pct(pr.CPUPercent)})
	}
	return rows
}

// sig3 is a rate with three significant figures below 100, whole above,
// and never in exponent form.
func sig3(v float64) string {
	if math.Abs(v) >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// fleetFigures are the fleet's measured figures as label and text.
func fleetFigures(fs *FleetStats) [][2]string {
	return [][2]string{
		{"fleet", fmt.Sprintf("%d devices connected at %s/s; %s webhooks/s, one per device every %s s; keep-alive every %s s; idle window %s s, steady %s s",
			fs.Devices, num(fs.ConnectRate), sig3(fs.WebhookRate), num(fs.WebhookEveryS), num(fs.KeepAliveS), num(fs.IdleS), num(fs.SteadyS))},
		{"fleet RSS", fmt.Sprintf("%s MB with no devices, %s MB with the fleet, %s MB at the end: %s MB per 1,000 devices (generator %s MB)",
			num1(fs.RSSBeforeMB), num1(fs.RSSWithDevicesMB), num1(fs.RSSEndMB), num1(fs.RSSPer1000MB), num1(fs.GeneratorRSSMB))},
		{"fleet CPU", fmt.Sprintf("%s%% with no devices, %s%% idle, %s%% steady (100%% = one core); per 1,000 devices %s%% for keep-alives, %s%% in all; %s (%d answered)",
			pct(fs.BaseCPUPercent), pct(fs.IdleCPUPercent), pct(fs.SteadyCPUPercent),
			pct3(fs.KeepAliveCPUPer1000Percent), pct3(fs.CPUPer1000Percent), perWebhookText(fs), fs.Webhooks)},
	}
}

// perWebhookText is the fleet's CPU per webhook, or why there is none.
func perWebhookText(fs *FleetStats) string {
	if fs.CPUPerWebhookUS == 0 && fs.Webhooks > 0 {
		return "CPU per webhook not separable from the keep-alives' (the steady window used no more than the idle one)"
	}
	return num1(fs.CPUPerWebhookUS) + " µs per webhook"
}

// printFleet writes the fleet's figures and projections for a terminal.
func printFleet(w io.Writer, fs *FleetStats) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, f := range fleetFigures(fs) {
		fmt.Fprintf(tw, "%s\t%s\n", f[0], f[1])
	}
	tw.Flush()
	fmt.Fprintln(w)
	// Numbers right-aligned, the labels padded to one width so that they
	// read left-aligned.
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	label := "%-" + strconv.Itoa(len(fleetProjected)) + "s"
	fmt.Fprintf(tw, label+"\tdevices\twebhooks/s\trelay RSS MB\trelay CPU %%\t\n", "")
	for _, r := range fleetRows(fs) {
		fmt.Fprintf(tw, label+"\t%s\t%s\t%s\t%s\t\n", r[0], r[1], r[2], r[3], r[4])
	}
	tw.Flush()
}

// writeFleetMD writes the fleet scenario into report.md.
func writeFleetMD(p func(string, ...any), fs *FleetStats) {
	p("## Fleet\n\n")
	p("The relay alone for %s s, then the fleet connected with keep-alives only, then webhooks at the fleet's rate. "+
		"Per 1,000 devices is the growth over the relay alone. The rows below the measured one are linear "+
		"projections for one node: the base plus the per-device figures times the devices, each device getting webhooks "+
		"as often as here. They are not measurements: memory and CPU grow faster than linearly once caches, the scheduler "+
		"and the garbage collector feel the size.\n\n", num(fleetBase.Seconds()))
	p("| | |\n|---|---|\n")
	for _, f := range fleetFigures(fs) {
		p("| %s | %s |\n", mdText(f[0]), mdText(f[1]))
	}
	p("\n| | Devices | Webhooks/s | Relay RSS MB | Relay CPU %% |\n|---|---:|---:|---:|---:|\n")
	for _, r := range fleetRows(fs) {
		p("| %s | %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3], r[4])
	}
	p("\n")
}
