package loadtest

// This file is the reporting side of a run: the live progress line, the
// final terminal table, and the files in OUT (WriteReport).

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/tsenart/vegeta/v12/lib/plot"
)

// The files WriteReport writes into OUT.
const (
	SummaryFile = "summary.json" // Summary, indented
	ReportFile  = "report.md"    // the capacity report for a planning doc
	ChartFile   = "chart.svg"    // latency vs rate (capacity) or percentiles (others)
	PlotFile    = "plot.html"    // vegeta's latency-over-time plot
)

// plotPoints caps each series of plot.html, as vegeta's CLI does (LTTB
// downsampling keeps the shape, spikes included).
const plotPoints = 4000

// WriteReport writes summary.json, report.md, chart.svg and plot.html into
// the directory out, creating it. results are the attack's raw results
// (relay and, under another Attack name, baseline) for plot.html; none
// means the scenario had no attack.
func WriteReport(out string, s *Summary, results []vegeta.Result) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("loadtest: report: %w", err)
	}
	now := time.Now()
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{SummaryFile, func(w io.Writer) error { return writeSummaryJSON(w, s) }},
		{ChartFile, func(w io.Writer) error { return writeChart(w, s) }},
		{ReportFile, func(w io.Writer) error { return writeMarkdown(w, s, now) }},
		{PlotFile, func(w io.Writer) error { return writePlot(w, s, results) }},
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(out, f.name), f.write); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(name string, write func(io.Writer) error) (err error) {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("loadtest: report: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("loadtest: report: %w", cerr)
		}
	}()
	w := bufio.NewWriter(f)
	if err := write(w); err != nil {
		return fmt.Errorf("loadtest: report: %s: %w", filepath.Base(name), err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("loadtest: report: %w", err)
	}
	return nil
}

func writeSummaryJSON(w io.Writer, s *Summary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // a command line with '&' stays readable
	return enc.Encode(s)
}

// writePlot writes vegeta's HTML plot. vegeta's plot orders each attack's
// results by Seq and needs it to start at 0 with no gaps and timestamps to
// increase; results gathered from several attackers (capacity steps, relay
// and baseline) do not promise that, so each Attack name is renumbered in
// timestamp order on a copy.
func writePlot(w io.Writer, s *Summary, results []vegeta.Result) error {
	if len(results) == 0 {
		sc := html.EscapeString(s.Scenario)
		_, err := fmt.Fprintf(w, `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>%s: no attack</title></head>
<body><p>The %s scenario sent no webhooks (no vegeta attack), so there is no latency plot.
See report.md and summary.json for what it measured.</p></body></html>
`, sc, sc)
		return err
	}
	order := make([]int, len(results))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ra, rb := &results[a], &results[b]
		if c := strings.Compare(ra.Attack, rb.Attack); c != 0 {
			return c
		}
		return ra.Timestamp.Compare(rb.Timestamp)
	})
	p := plot.New(plot.Title(fmt.Sprintf("pixelrelay loadtest: %s", s.Scenario)), plot.Downsample(plotPoints))
	var seq uint64
	for i, j := range order {
		r := results[j]
		if i > 0 && r.Attack != results[order[i-1]].Attack {
			seq = 0
		}
		r.Seq = seq
		seq++
		if err := p.Add(&r); err != nil {
			return err
		}
	}
	p.Close()
	_, err := p.WriteTo(w)
	return err
}

// ---- Markdown report ----

func writeMarkdown(w io.Writer, s *Summary, now time.Time) error {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# Load test report: %s, %s\n\n", mdText(s.Scenario), now.UTC().Format("2006-01-02 15:04 UTC"))
	if s.Pass {
		p("**Result: PASS**\n\n")
	} else {
		p("**Result: FAIL**\n\n")
		for _, f := range s.Failures {
			p("- %s\n", mdText(f))
		}
		if len(s.Failures) > 0 {
			p("\n")
		}
	}
	if len(s.Warnings) > 0 {
		p("Warnings (not failures, but they qualify the figures):\n\n")
		for _, w := range s.Warnings {
			p("- %s\n", mdText(w))
		}
		p("\n")
	}
	p("Machine: %s, %s/%s, %s. The relay, the baseline and the load generator all ran on it.\n\n",
		cpuDescription(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	p("CPU placement: %s.\n\n", mdText(s.Pin.describe()))
	cmd := s.Command
	if cmd == "" {
		cmd = "(not recorded)"
	}
	fence := strings.Repeat("`", max(3, longestRun(cmd, '`')+1))
	p("Command:\n\n%ssh\n%s\n%s\n\n", fence, cmd, fence)

	p("## Results\n\n| | |\n|---|---:|\n")
	row := func(k, v string) { p("| %s | %s |\n", k, mdText(v)) }
	row("Scenario", s.Scenario)
	if s.Transport != "" {
		row("Transport", s.Transport)
	}
	row("Devices", fmt.Sprintf("%d asked, %d connected", s.Devices, s.Connected))
	if s.Target != "" {
		row("Relay address", s.Target)
	}
	if s.Dist != "" {
		row("Webhooks over devices", s.Dist)
	}
	if s.AckDelayMS > 0 || s.AckJitterMS > 0 {
		row("Device ack delay", fmt.Sprintf("%s ± %s ms", ms(s.AckDelayMS), ms(s.AckJitterMS)))
	}
	if s.Rate > 0 {
		row("Offered rate", num(s.Rate)+" webhooks/s")
	} else if len(s.Steps) > 0 {
		row("Offered rate", fmt.Sprintf("ramp of %d steps, %s to %s webhooks/s",
			len(s.Steps), num(s.Steps[0].Rate), num(s.Steps[len(s.Steps)-1].Rate)))
	}
	row("Duration", num(s.DurationS)+" s")
	row("Requests", strconv.FormatUint(s.Requests, 10))
	row("Throughput", num(s.Throughput)+" answered 2xx/s")
	row("Status codes", statusText(s.StatusCounts))
	row("Latency p50", ms(s.Latency.P50)+" ms")
	row("Latency p90", ms(s.Latency.P90)+" ms")
	row("Latency p99", ms(s.Latency.P99)+" ms")
	row("Latency max", ms(s.Latency.Max)+" ms")
	row("Latency mean", ms(s.Latency.Mean)+" ms")
	relayName := "Relay"
	if c := s.Cluster; c != nil {
		relayName = fmt.Sprintf("Relay (%d nodes together)", len(c.Nodes))
	}
	row(relayName+" CPU", fmt.Sprintf("%s%% mean, %s%% max (100%% = one core)", pct(s.RelayCPUPercent), pct(s.Relay.CPUMaxPct)))
	row(relayName+" RSS", fmt.Sprintf("%s MB at end, %s MB max", num1(s.RelayRSSMB), num1(s.Relay.RSSMaxMB)))
	row("Delivered", strconv.FormatUint(s.Delivered, 10))
	row("Lost", strconv.FormatUint(s.Lost, 10))
	row("Duplicated", strconv.FormatUint(s.Duplicated, 10))
	row("Misrouted", strconv.FormatUint(s.Misrouted, 10))
	row("Late (device got it, caller got no 200)", strconv.FormatUint(s.Late, 10))
	p("\n")
	if len(s.ByTransport) > 0 {
		writeByTransportMD(p, s)
	}

	p("## Relay vs baseline\n\n")
	if bl := s.Baseline; bl != nil {
		p("The baseline is the same attack against a bare fasthttp TLS handler on this machine, in the same run: " +
			"it does TLS and HTTP and nothing else, so it is the load generator's own ceiling. " +
			"Relay minus baseline is what the relay itself adds.\n\n")
		p("| | Relay | Baseline | Relay − baseline |\n|---|---:|---:|---:|\n")
		lat := func(name string, r, b, added float64) {
			p("| %s | %s ms | %s ms | %s ms |\n", name, ms(r), ms(b), signedMS(added))
		}
		lat("p50", s.Latency.P50, bl.Latency.P50, bl.AddedP50MS)
		lat("p90", s.Latency.P90, bl.Latency.P90, s.Latency.P90-bl.Latency.P90)
		lat("p99", s.Latency.P99, bl.Latency.P99, bl.AddedP99MS)
		lat("max", s.Latency.Max, bl.Latency.Max, s.Latency.Max-bl.Latency.Max)
		p("| Requests | %d | %d | |\n", s.Requests, bl.Requests)
		p("| Throughput | %s/s | %s/s | ratio %s |\n", num(s.Throughput), num(bl.Throughput), ratio(bl.ThroughputRatio))
		if bp := bl.Process; bp != nil {
			p("| CPU (100%% = one core) | %s%% | %s%% | %s%% |\n", pct(s.RelayCPUPercent), pct(bp.CPUPercent), signedPct(s.RelayCPUPercent-bp.CPUPercent))
			p("| RSS | %s MB | %s MB | %s MB |\n", num1(s.RelayRSSMB), num1(bp.RSSMB), signedNum1(s.RelayRSSMB-bp.RSSMB))
		}
		p("\n")
		p("The relay answered %s of the baseline's throughput.\n\n", ratioPct(bl.ThroughputRatio))
	} else if len(s.BaselineSteps) > 0 {
		p("The baseline, the same attack against a bare fasthttp TLS handler on this machine, ran at every " +
			"capacity step: see the baseline columns under Capacity.\n\n")
	} else {
		p("No baseline was run for this scenario: the latencies above include the load generator's own cost.\n\n")
	}

	if cs := s.Costs; cs != nil {
		writeCostsMD(p, cs)
	}
	if fs := s.Fleet; fs != nil {
		writeFleetMD(p, fs)
	}

	if c := s.Connect; c != nil {
		p("## Connecting devices\n\n| | |\n|---|---:|\n")
		row("Devices", strconv.Itoa(c.Devices))
		row("Failed", strconv.Itoa(c.Failed))
		row("All connected in", num(c.AllConnectedS)+" s")
		row("Handshakes", num(c.HandshakesPS)+"/s")
		row("Connect p50 (dial + login)", ms(c.P50MS)+" ms")
		row("Connect p99", ms(c.P99MS)+" ms")
		p("\n")
	}
	if m := s.Memory; m != nil {
		p("## Memory of idle devices\n\n| | |\n|---|---:|\n")
		row("Relay RSS before devices", num1(m.RSSBeforeMB)+" MB")
		row("Relay RSS with devices", num1(m.RSSAfterMB)+" MB")
		row("Per device", num1(m.PerDeviceKiB)+" KiB")
		row("QUIC devices", strconv.Itoa(m.QUICDevices))
		row("WebTransport devices", strconv.Itoa(m.WebTransDevices))
		row("WebSocket devices", strconv.Itoa(m.WebSocketDevs))
		if m.MQTTDevices > 0 {
			row("MQTT clocks", strconv.Itoa(m.MQTTDevices))
		}
		if m.Goroutines > 0 {
			row("Relay goroutines", strconv.Itoa(m.Goroutines))
		}
		p("\n")
		if len(m.ByTransport) > 0 {
			p("Each transport alone, on a fresh relay:\n\n")
			p("| Transport | Devices | RSS before MB | RSS with devices MB | Per device KiB |\n|---|---:|---:|---:|---:|\n")
			for _, t := range m.ByTransport {
				p("| %s | %d | %s | %s | %s |\n", mdText(t.Transport), t.Devices, num1(t.RSSBeforeMB), num1(t.RSSAfterMB), num1(t.PerDeviceKiB))
			}
			p("\n")
		}
		if m.Mosquitto != nil {
			writeMosquittoMD(p, m)
		}
	}
	if st := s.MQTTStorm; st != nil {
		writeMQTTStormMD(p, st)
	}
	if c := s.Churn; c != nil {
		p("## Churn\n\n| | |\n|---|---:|\n")
		row("Reconnects asked", fmt.Sprintf("%s of devices/s", ratioPct(c.ReconnectPerS)))
		row("Rotations asked", fmt.Sprintf("%s of devices/s", ratioPct(c.RotatePerS)))
		row("Sessions hung up on purpose", strconv.FormatUint(c.Reconnects, 10))
		row("Sessions re-established", strconv.FormatUint(c.Reconnected, 10))
		row("Tokens rotated", strconv.FormatUint(c.Rotations, 10))
		row("Rotations failed", strconv.FormatUint(c.RotationsFailed, 10))
		row("Rotations skipped (too many in flight, or an MQTT clock)", strconv.FormatUint(c.RotationsSkipped, 10))
		p("\n")
	}

	if c := s.Cluster; c != nil {
		writeClusterMD(p, s, c)
	}
	if ss := s.Soak; ss != nil {
		writeSoakMD(p, ss)
	}

	if len(s.Steps) > 0 {
		p("## Capacity\n\n")
		if s.SLOP99MS > 0 {
			p("A step holds when its p99 is at most %s ms and no request failed.\n\n", num(s.SLOP99MS))
		}
		if s.MaxSustainedRate > 0 {
			p("**Max sustained rate: %s webhooks/s** (the highest step that held).\n\n", num(s.MaxSustainedRate))
		} else {
			p("**No step held the SLO.**\n\n")
		}
		if s.BaselineMaxSustainedRate > 0 {
			p("The baseline held up to %s webhooks/s (its ramp stops at the relay's last step).\n\n", num(s.BaselineMaxSustainedRate))
		}
		p("| Offered/s | Throughput/s | Errors | p50 ms | p90 ms | p99 ms | max ms | Baseline p99 ms | Relay − baseline p99 ms | Relay CPU | Relay RSS MB | Held |\n")
		p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n")
		for _, st := range s.Steps {
			bp99, added := "–", "–"
			if b, ok := stepAt(s.BaselineSteps, st.Rate); ok {
				bp99, added = ms(b.Latency.P99), signedMS(st.Latency.P99-b.Latency.P99)
			}
			held := "no"
			if st.Held {
				held = "yes"
			}
			p("| %s | %s | %s%% | %s | %s | %s | %s | %s | %s | %s%% | %s | %s |\n",
				num(st.Rate), num(st.Throughput), pct(st.ErrorRate*100),
				ms(st.Latency.P50), ms(st.Latency.P90), ms(st.Latency.P99), ms(st.Latency.Max),
				bp99, added, pct(st.RelayCPUPct), num1(st.RelayRSSMB), held)
		}
		p("\n")
	}

	p("## Chart\n\n![chart](%s)\n\n", ChartFile)
	switch {
	case len(s.Steps) > 0:
		p("Latency (log scale) against the offered rate, relay and baseline; the dashed line is the SLO.")
	case s.Soak != nil:
		p("Webhook latency p50 and p99 (log scale) second by second, answers other than 2xx per second, and the restarts' windows.")
	case s.Cluster != nil:
		p("Webhook latency percentiles: all, local and cross-node deliveries, and the baseline.")
	default:
		p("Webhook latency percentiles, relay and baseline.")
	}
	p(" %s has the latency of every request over time; %s has every figure above.\n\n", PlotFile, SummaryFile)

	p("## How to read this\n\n" +
		"These numbers are from this machine and this run, not a promise for another. " +
		"The load generator and its simulated devices share the CPU with the relay, so absolute figures " +
		"understate what the relay does on a machine of its own. Compare ratios instead: the relay against " +
		"the baseline (what the relay adds over bare TLS and HTTP), and runs of the same command on the same " +
		"machine against each other. Latencies are webhook round trips as the caller sees them, device " +
		"acknowledgement included; CPU is in percent of one core; MB are MiB. Lost, duplicated or misrouted " +
		"messages fail the run whatever the latency.\n")

	_, err := w.Write(b.Bytes())
	return err
}

// writeClusterMD writes the cluster's nodes, NATS, and where deliveries
// crossed nodes.
// writeByTransportMD is the run split by the devices' transport.
func writeByTransportMD(p func(string, ...any), s *Summary) {
	what := "the webhooks sent to its devices"
	if len(s.Steps) > 0 {
		what += " at the highest step that held (or the best step)"
	}
	if s.Requests == 0 {
		p("## By transport\n\nHow each transport's devices connected.\n\n")
		p("| Transport | Devices | Connected | Connect p50 ms | Connect p99 ms |\n|---|---:|---:|---:|---:|\n")
		for _, t := range s.ByTransport {
			p("| %s | %d | %d | %s | %s |\n", mdText(t.Transport), t.Devices, t.Connected, ms(t.ConnectP50MS), ms(t.ConnectP99MS))
		}
		p("\n")
		return
	}
	p("## By transport\n\nEach transport's devices: how they connected, and %s.\n\n", what)
	p("| Transport | Devices | Connected | Connect p50 ms | Connect p99 ms | Webhooks | 2xx | p50 ms | p90 ms | p99 ms | max ms |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range s.ByTransport {
		p("| %s | %d | %d | %s | %s | %d | %d | %s | %s | %s | %s |\n", mdText(t.Transport), t.Devices, t.Connected,
			ms(t.ConnectP50MS), ms(t.ConnectP99MS), t.Webhooks, t.OK, ms(t.Latency.P50), ms(t.Latency.P90), ms(t.Latency.P99), ms(t.Latency.Max))
	}
	p("\n")
}

func writeClusterMD(p func(string, ...any), s *Summary, c *ClusterStats) {
	p("## Cluster\n\n")
	p("%d relay nodes, each its own process, joined by a NATS server in a process of its own (%s). "+
		"Device i started on node i mod %d; each webhook went to a node picked at random among those in rotation.\n\n",
		len(c.Nodes), mdText(c.NATSURL), len(c.Nodes))
	p("| Node | Address | PIDs | Webhooks sent | Devices at end | CPU mean | CPU max | RSS at end | RSS max |\n")
	p("|---|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range c.Nodes {
		p("| %d | %s | %s | %d | %d | %s%% | %s%% | %s MB | %s MB |\n", n.Node, mdText(n.Addr), joinInts(n.PIDs),
			n.Webhooks, n.Devices, pct(n.Process.CPUPercent), pct(n.Process.CPUMaxPct), num1(n.Process.RSSMB), num1(n.Process.RSSMaxMB))
	}
	if c.NATS.PID != 0 {
		p("| NATS | | %d | | | %s%% | %s%% | %s MB | %s MB |\n", c.NATS.PID,
			pct(c.NATS.CPUPercent), pct(c.NATS.CPUMaxPct), num1(c.NATS.RSSMB), num1(c.NATS.RSSMaxMB))
	}
	p("| Nodes together | | | | | %s%% | %s%% | %s MB | %s MB |\n\n",
		pct(s.Relay.CPUPercent), pct(s.Relay.CPUMaxPct), num1(s.Relay.RSSMB), num1(s.Relay.RSSMaxMB))
	if c.NATS.PID == 0 {
		p("The NATS server ran inside the generator's process: its CPU and memory are in the generator's.\n\n")
	}

	total := c.Local + c.CrossNode + c.Unknown
	share := func(n uint64) string {
		if total == 0 {
			return "–"
		}
		return ratioPct(float64(n) / float64(total))
	}
	p("Deliveries (webhooks answered 2xx) by where the device's session was when the webhook was sent:\n\n")
	p("| | Deliveries | Share | p50 ms | p90 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|\n")
	p("| Local: device on the webhook's node | %d | %s | %s | %s | %s | %s |\n", c.Local, share(c.Local),
		ms(c.LocalLatency.P50), ms(c.LocalLatency.P90), ms(c.LocalLatency.P99), ms(c.LocalLatency.Max))
	p("| Cross-node: device on another node | %d | %s | %s | %s | %s | %s |\n", c.CrossNode, share(c.CrossNode),
		ms(c.CrossNodeLatency.P50), ms(c.CrossNodeLatency.P90), ms(c.CrossNodeLatency.P99), ms(c.CrossNodeLatency.Max))
	if c.Unknown > 0 {
		p("| Device between sessions when sent | %d | %s | | | | |\n", c.Unknown, share(c.Unknown))
	}
	p("\n")
	if c.Local > 0 && c.CrossNode > 0 {
		p("Crossing nodes (a NATS request to the device's node and its reply) added %s ms at p50 and %s ms at p99.\n\n",
			signedMS(c.CrossNodeLatency.P50-c.LocalLatency.P50), signedMS(c.CrossNodeLatency.P99-c.LocalLatency.P99))
	}
	if c.Moves > 0 || c.MovesFailed > 0 {
		p("Devices sent away with GOAWAY moved make-before-break %d times (logged in on another node, then left); %d moves failed to log in.\n\n",
			c.Moves, c.MovesFailed)
	}
	p("## Answers other than 2xx\n\n")
	if len(s.NonOK) == 0 {
		p("None: every webhook was answered 2xx.\n\n")
	} else {
		p("| Status and code | Count |\n|---|---:|\n")
		for _, k := range sortedByCount(s.NonOK) {
			p("| %s | %d |\n", mdText(k), s.NonOK[k])
		}
		p("\nStatus 0 is no answer at all (the kind of transport error follows).\n\n")
	}
}

// writeSoakMD writes the rolling restart.
func writeSoakMD(p func(string, ...any), ss *SoakStats) {
	p("## Rolling restart\n\n")
	p("Every %s s the next node in turn was taken out of the generator's rotation (as a balancer that health-checks "+
		"/readyz would), sent SIGTERM once its webhooks were answered (its devices move to other nodes make-before-break), "+
		"started again with the same flags on the same ports, and put back in rotation once its /readyz answered. "+
		"A restart's window runs from out of rotation to back in; the webhooks counted in it were sent to any node.\n\n", num(ss.RestartEveryS))
	if len(ss.Restarts) == 0 {
		p("No node was restarted: the attack was shorter than one interval.\n\n")
		return
	}
	p("| # | Node | At s | Settle s | Drain s | Empty after s | Back s | Window s | Devices | Moved | Moves failed | Webhooks | Not 2xx | Churn's | By code |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for i, r := range ss.Restarts {
		empty := "–"
		if r.EmptyS >= 0 {
			empty = secs(r.EmptyS)
		}
		p("| %d | %d | %s | %s | %s | %s | %s | %s | %d | %d | %d | %d | %d | %d | %s |\n", i+1, r.Node, num1(r.AtS),
			secs(r.SettleS), secs(r.DrainS), empty, secs(r.BackS), secs(r.OutS), r.Devices, r.Moved, r.MovesFailed,
			r.Requests, r.NonOK, r.NonOKChurn, mdText(codesText(r.NonOKByCode)))
	}
	p("\n")
	for i, r := range ss.Restarts {
		if r.Error != "" {
			p("Restart %d failed: %s\n\n", i+1, mdText(r.Error))
		}
	}
	p("Settle: out of rotation until every webhook sent to the node was answered. Drain: SIGTERM to exit. " +
		"Empty after: SIGTERM until no device had a session on it. Back: exit to ready again. " +
		"Churn's: sent to a device that churn hung up or rotated between 2 s before the webhook and its answer.\n\n")
	p("Outside the restarts' windows (%s s): %d answers other than 2xx, %s/s, %d of them to devices churn hung up or rotated meanwhile.\n\n",
		num1(ss.OutsideS), ss.OutsideNonOK, rate3(float64(ss.OutsideNonOK), ss.OutsideS), ss.OutsideNonOKChurn)
	var odd []string
	for i, r := range ss.Restarts {
		for _, f := range r.Samples {
			if !f.Churn {
				odd = append(odd, fmt.Sprintf("restart %d, %s s after SIGTERM: %s", i+1, secs(f.AfterTermS), sampleText(f)))
			}
		}
	}
	for _, f := range ss.OutsideSamples {
		odd = append(odd, fmt.Sprintf("%s s into the attack: %s", num1(f.AfterTermS), sampleText(f)))
	}
	if len(odd) > 0 {
		p("Answers other than 2xx that churn does not explain (the first of each restart, and outside), with what their devices did:\n\n")
		for _, o := range odd {
			p("- %s\n", mdText(o))
		}
		p("\n")
	}
}

// sampleText describes a webhook not answered 2xx and its device's events.
func sampleText(f FailureSample) string {
	where := "between sessions"
	if f.DeviceNode >= 0 {
		where = fmt.Sprintf("on node %d", f.DeviceNode)
	}
	t := fmt.Sprintf("%s after %s ms, sent to node %d for device %d %s", f.Answer, ms(f.LatencyMS), f.WebhookNode, f.Device, where)
	if len(f.Events) > 0 {
		t += "; device: " + strings.Join(f.Events, ", ")
	}
	return t
}

// joinInts is "1, 2, 3".
func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// secs formats seconds to the millisecond.
func secs(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// rate3 is n per s, with three significant figures or so.
func rate3(n, s float64) string {
	if s <= 0 {
		return "–"
	}
	return strconv.FormatFloat(n/s, 'g', 3, 64)
}

// sortedByCount is m's keys, most first.
func sortedByCount(m map[string]uint64) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return keys
}

// stepAt finds the step at rate (the baseline ramp uses the relay's rates).
func stepAt(steps []Step, rate float64) (Step, bool) {
	for _, st := range steps {
		if math.Abs(st.Rate-rate) <= 1e-9*max(1, math.Abs(rate)) {
			return st, true
		}
	}
	return Step{}, false
}

// cpuDescription is "8 CPUs (model name)", the model from /proc/cpuinfo
// where there is one.
func cpuDescription() string {
	n := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return n
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return fmt.Sprintf("%s (%s)", n, strings.TrimSpace(v))
		}
	}
	return n
}

// mdText keeps text on one line and stops it from turning into markup.
func mdText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_[]<>|#", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func longestRun(s string, c byte) int {
	n, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			n = max(n, run)
		} else {
			run = 0
		}
	}
	return n
}

// ---- number formatting ----

// ms formats milliseconds with three significant figures or so.
func ms(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a < 1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case a < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}

func signedMS(v float64) string {
	if v >= 0 {
		return "+" + ms(v)
	}
	return "−" + ms(-v)
}

// num formats a rate or count: whole numbers without decimals.
func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	if math.Abs(v) >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func num1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func signedNum1(v float64) string {
	if v >= 0 {
		return "+" + num1(v)
	}
	return "−" + num1(-v)
}

func signedPct(v float64) string {
	if v >= 0 {
		return "+" + pct(v)
	}
	return "−" + pct(-v)
}

func pct(v float64) string {
	if math.Abs(v) < 10 && v != 0 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func ratio(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func ratioPct(v float64) string { return pct(v*100) + "%" }

// statusText is "200: 980, 504: 20", by code; 0 is a transport error.
func statusText(c map[string]uint64) string {
	if len(c) == 0 {
		return "none"
	}
	codes := make([]string, 0, len(c))
	for k := range c {
		codes = append(codes, k)
	}
	slices.SortFunc(codes, func(a, b string) int {
		ai, aerr := strconv.Atoi(a)
		bi, berr := strconv.Atoi(b)
		if aerr == nil && berr == nil {
			return ai - bi
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(codes))
	for i, k := range codes {
		name := k
		if k == "0" {
			name = "0 (transport error)"
		}
		parts[i] = fmt.Sprintf("%s: %d", name, c[k])
	}
	return strings.Join(parts, ", ")
}

// ---- terminal ----

// PrintTable writes the final summary for a terminal: the figures of the
// run, the baseline comparison, the capacity steps, and PASS or FAIL with
// the reasons.
func PrintTable(w io.Writer, s *Summary) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }

	row("scenario", "%s (%s, %d/%d devices connected)", s.Scenario, orDefault(s.Transport, "?"), s.Connected, s.Devices)
	if s.Rate > 0 {
		row("offered", "%s webhooks/s for %s s", num(s.Rate), num(s.DurationS))
	} else {
		row("duration", "%s s", num(s.DurationS))
	}
	if s.Dist != "" || s.AckDelayMS > 0 || s.AckJitterMS > 0 {
		row("swarm", "%s, ack delay %s ± %s ms", orDefault(s.Dist, "uniform"), ms(s.AckDelayMS), ms(s.AckJitterMS))
	}
	row("requests", "%d, throughput %s/s", s.Requests, num(s.Throughput))
	row("status", "%s", statusText(s.StatusCounts))
	row("latency ms", "p50 %s  p90 %s  p99 %s  max %s", ms(s.Latency.P50), ms(s.Latency.P90), ms(s.Latency.P99), ms(s.Latency.Max))
	if bl := s.Baseline; bl != nil {
		row("baseline ms", "p50 %s  p90 %s  p99 %s  max %s  (throughput %s/s)",
			ms(bl.Latency.P50), ms(bl.Latency.P90), ms(bl.Latency.P99), ms(bl.Latency.Max), num(bl.Throughput))
		row("relay - base", "p50 %s  p99 %s ms, throughput ratio %s", signedMS(bl.AddedP50MS), signedMS(bl.AddedP99MS), ratio(bl.ThroughputRatio))
		if bp := bl.Process; bp != nil {
			row("baseline", "CPU %s%% mean, %s%% max  RSS %s MB", pct(bp.CPUPercent), pct(bp.CPUMaxPct), num1(bp.RSSMB))
		}
	}
	row("relay", "CPU %s%% mean, %s%% max  RSS %s MB (max %s)", pct(s.RelayCPUPercent), pct(s.Relay.CPUMaxPct), num1(s.RelayRSSMB), num1(s.Relay.RSSMaxMB))
	row("accounting", "delivered %d  lost %d  duplicated %d  misrouted %d  late %d", s.Delivered, s.Lost, s.Duplicated, s.Misrouted, s.Late)
	for _, t := range s.ByTransport {
		line := fmt.Sprintf("%d devices (%d connected, p50 %s p99 %s ms)", t.Devices, t.Connected, ms(t.ConnectP50MS), ms(t.ConnectP99MS))
		if s.Requests > 0 {
			line += fmt.Sprintf("  webhooks %d (%d 2xx)  p50 %s  p90 %s  p99 %s  max %s ms",
				t.Webhooks, t.OK, ms(t.Latency.P50), ms(t.Latency.P90), ms(t.Latency.P99), ms(t.Latency.Max))
		}
		row("  "+t.Transport, "%s", line)
	}
	if c := s.Connect; c != nil {
		row("connect", "%d devices, %d failed, all in %s s (%s/s), p50 %s ms  p99 %s ms",
			c.Devices, c.Failed, num(c.AllConnectedS), num(c.HandshakesPS), ms(c.P50MS), ms(c.P99MS))
	}
	if m := s.Memory; m != nil {
		row("memory", "RSS %s -> %s MB, %s KiB per device (%d QUIC, %d WebTransport, %d WebSocket, %d MQTT)",
			num1(m.RSSBeforeMB), num1(m.RSSAfterMB), num1(m.PerDeviceKiB), m.QUICDevices, m.WebTransDevices, m.WebSocketDevs, m.MQTTDevices)
		for _, t := range m.ByTransport {
			row("  "+t.Transport, "RSS %s -> %s MB, %s KiB per device (%d devices)",
				num1(t.RSSBeforeMB), num1(t.RSSAfterMB), num1(t.PerDeviceKiB), t.Devices)
		}
		if mm := m.Mosquitto; mm != nil {
			row("  mosquitto", "RSS %s -> %s MB, %s KiB per connection (%d clocks; relay %s KiB per MQTT clock, ratio %s; %s)",
				num1(mm.RSSBeforeMB), num1(mm.RSSAfterMB), num1(mm.PerConnKiB), mm.Connections, num1(mm.RelayPerDeviceKiB), ratio(mm.Ratio), mm.Version)
		}
	}
	if c := s.Churn; c != nil {
		row("churn", "reconnects %d (re-established %d)  rotations %d (failed %d, skipped %d)",
			c.Reconnects, c.Reconnected, c.Rotations, c.RotationsFailed, c.RotationsSkipped)
	}
	if c := s.Cluster; c != nil {
		for _, n := range c.Nodes {
			row(fmt.Sprintf("node %d", n.Node), "%s  webhooks %d  devices %d  CPU %s%% mean, %s%% max  RSS %s MB (max %s)  pids %s",
				n.Addr, n.Webhooks, n.Devices, pct(n.Process.CPUPercent), pct(n.Process.CPUMaxPct),
				num1(n.Process.RSSMB), num1(n.Process.RSSMaxMB), joinInts(n.PIDs))
		}
		if c.NATS.PID != 0 {
			row("nats", "CPU %s%% mean, %s%% max  RSS %s MB (max %s)", pct(c.NATS.CPUPercent), pct(c.NATS.CPUMaxPct), num1(c.NATS.RSSMB), num1(c.NATS.RSSMaxMB))
		} else {
			row("nats", "in this process (not sampled apart)")
		}
		row("cross-node", "%s of %d deliveries  local p50 %s p99 %s ms  cross-node p50 %s p99 %s ms",
			ratioPct(c.CrossNodeShare), c.Local+c.CrossNode+c.Unknown,
			ms(c.LocalLatency.P50), ms(c.LocalLatency.P99), ms(c.CrossNodeLatency.P50), ms(c.CrossNodeLatency.P99))
		row("moves", "%d make-before-break, %d failed", c.Moves, c.MovesFailed)
		row("not 2xx", "%s", codesText(s.NonOK))
	}
	if ss := s.Soak; ss != nil {
		for i, r := range ss.Restarts {
			row(fmt.Sprintf("restart %d", i+1), "node %d at %s s: drain %s s, back %s s, window %s s; %d devices, %d moved, %d failed; %d of %d webhooks not 2xx (%d churn; %s)%s",
				r.Node, num1(r.AtS), secs(r.DrainS), secs(r.BackS), secs(r.OutS), r.Devices, r.Moved, r.MovesFailed,
				r.NonOK, r.Requests, r.NonOKChurn, codesText(r.NonOKByCode), map[bool]string{true: "  FAILED", false: ""}[r.Error != ""])
		}
		row("outside", "%s s outside the restarts: %d not 2xx (%s/s, %d churn)", num1(ss.OutsideS), ss.OutsideNonOK,
			rate3(float64(ss.OutsideNonOK), ss.OutsideS), ss.OutsideNonOKChurn)
	}
	if len(s.Steps) > 0 {
		if s.MaxSustainedRate > 0 {
			row("max rate", "%s webhooks/s held p99 <= %s ms with no errors", num(s.MaxSustainedRate), num(s.SLOP99MS))
		} else {
			row("max rate", "no step held p99 <= %s ms with no errors", num(s.SLOP99MS))
		}
		if s.BaselineMaxSustainedRate > 0 {
			row("baseline max", "%s webhooks/s", num(s.BaselineMaxSustainedRate))
		}
	}
	if s.Pin != nil {
		row("cpus", "%s", s.Pin.describe())
	}
	tw.Flush()

	if cs := s.Costs; cs != nil {
		fmt.Fprintln(w)
		printCosts(w, cs)
	}
	if fs := s.Fleet; fs != nil {
		fmt.Fprintln(w)
		printFleet(w, fs)
	}
	if st := s.MQTTStorm; st != nil {
		fmt.Fprintln(w)
		printMQTTStorm(w, st)
	}
	if len(s.Steps) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "rate/s\tthroughput/s\terrors\tp50 ms\tp99 ms\tbase p99 ms\tCPU %\tRSS MB\theld\t")
		for _, st := range s.Steps {
			bp99 := "-"
			if b, ok := stepAt(s.BaselineSteps, st.Rate); ok {
				bp99 = ms(b.Latency.P99)
			}
			held := "no"
			if st.Held {
				held = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s%%\t%s\t%s\t%s\t%s\t%s\t%s\t\n", num(st.Rate), num(st.Throughput),
				pct(st.ErrorRate*100), ms(st.Latency.P50), ms(st.Latency.P99), bp99, pct(st.RelayCPUPct), num1(st.RelayRSSMB), held)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	for _, warn := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if s.Pass {
		fmt.Fprintln(w, "PASS")
		return
	}
	fmt.Fprintln(w, "FAIL")
	for _, f := range s.Failures {
		fmt.Fprintf(w, "  - %s\n", f)
	}
}

func orDefault(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

// Progress is the live progress line of a running attack: rewritten in
// place on a terminal, at most one plain line a second otherwise (a log or
// CI). Safe for concurrent use.
type Progress struct {
	w   io.Writer // static after construction
	tty bool      // static after construction

	mu      sync.Mutex    // guards the fields below
	shown   bool          // a line has been written
	lastAt  time.Duration // elapsed of the last line written (not a TTY)
	pending string        // the latest line not written yet (not a TTY)
}

// NewProgress writes progress to w; isTTY says whether w is a terminal.
func NewProgress(w io.Writer, isTTY bool) *Progress {
	return &Progress{w: w, tty: isTTY}
}

// Update shows the attack's state: time since it started, requests sent,
// the current rate (requests/s), recent latency percentiles and errors
// (non-2xx and transport failures).
func (p *Progress) Update(elapsed time.Duration, requests uint64, rate, p50ms, p99ms float64, errors uint64) {
	line := fmt.Sprintf("%7s  %d requests  %s/s  p50 %s ms  p99 %s ms  %d errors",
		elapsed.Round(time.Second), requests, num(rate), ms(p50ms), ms(p99ms), errors)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		// \x1b[K clears what a longer previous line left.
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.shown = true
		return
	}
	// elapsed going back means a new attack (the next capacity step).
	if !p.shown || elapsed-p.lastAt >= time.Second || elapsed < p.lastAt {
		fmt.Fprintln(p.w, line)
		p.shown, p.lastAt, p.pending = true, elapsed, ""
		return
	}
	p.pending = line
}

// Done ends the progress output: on a terminal it ends the line; otherwise
// it writes the last update if it was held back.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.tty && p.shown:
		fmt.Fprintln(p.w)
	case !p.tty && p.pending != "":
		fmt.Fprintln(p.w, p.pending)
	}
	p.shown, p.pending, p.lastAt = false, "", 0
}
