package loadtest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func capacitySummary() *Summary {
	s := &Summary{
		Scenario: "capacity", Devices: 1000, Connected: 1000, Transport: "quic",
		DurationS: 50, Target: "127.0.0.1:8443",
		Command:      `loadtest --scenario capacity --devices 1000 --out 'out dir' --note "a&b<c>"`,
		Requests:     93000,
		StatusCounts: map[string]uint64{"200": 92990, "504": 7, "0": 3},
		Throughput:   1859.8,
		Delivered:    92990, Late: 7,
		Latency:         LatencyMS{P50: 1.2, P90: 3.4, P99: 45.6, Max: 812, Mean: 2.1},
		Relay:           ProcessStats{PID: 4242, CPUPercent: 153.2, CPUMaxPct: 301.5, RSSMB: 88.4, RSSMaxMB: 91.2, Samples: 100},
		RelayCPUPercent: 153.2, RelayRSSMB: 88.4,
		Connect:                  &ConnectStats{Devices: 1000, AllConnectedS: 2.5, HandshakesPS: 400, P50MS: 12, P99MS: 48},
		SLOP99MS:                 50,
		MaxSustainedRate:         800,
		BaselineMaxSustainedRate: 1600,
		Dist:                     "zipf", AckDelayMS: 2, AckJitterMS: 1,
		Warnings: []string{"generator fell behind at 1600/s"},
		Pass:     true,
	}
	for i, rate := range []float64{100, 200, 400, 800, 1600} {
		f := float64(i + 1)
		s.Steps = append(s.Steps, Step{
			Rate: rate, Requests: uint64(rate * 10), Throughput: rate * 0.999,
			Latency:     LatencyMS{P50: 0.8 * f, P90: 2 * f, P99: 3 * f * f, Max: 20 * f * f},
			RelayCPUPct: 20 * f, RelayRSSMB: 80 + f, Held: rate <= 800,
		})
		s.BaselineSteps = append(s.BaselineSteps, Step{
			Rate: rate, Requests: uint64(rate * 10), Throughput: rate,
			Latency: LatencyMS{P50: 0.3 * f, P90: 0.7 * f, P99: 1.5 * f, Max: 9 * f}, Held: true,
		})
	}
	s.Steps[4].ErrorRate = 0.012
	s.Steps[4].Latency.P99 = 321
	return s
}

func faninSummary() *Summary {
	return &Summary{
		Scenario: "fanin", Devices: 10, Connected: 10, Transport: "mixed",
		Rate: 500, DurationS: 20, Target: "127.0.0.1:8443",
		Command:      "loadtest --scenario fanin --rate 500",
		Requests:     10000,
		StatusCounts: map[string]uint64{"200": 10000},
		Throughput:   499.9,
		Delivered:    9997, Lost: 3,
		Latency:         LatencyMS{P50: 1.25, P90: 2.5, P99: 7.75, Max: 41, Mean: 1.5},
		Relay:           ProcessStats{CPUPercent: 35.5, CPUMaxPct: 60, RSSMB: 40.5, RSSMaxMB: 42, Samples: 40},
		RelayCPUPercent: 35.5, RelayRSSMB: 40.5,
		Baseline: &BaselineStats{
			Requests: 10000, Throughput: 500,
			Latency:    LatencyMS{P50: 0.45, P90: 0.9, P99: 2.25, Max: 15, Mean: 0.5},
			AddedP50MS: 0.8, AddedP99MS: 5.5, ThroughputRatio: 0.9998,
			Process: &ProcessStats{PID: 77, CPUPercent: 8.5, CPUMaxPct: 20, RSSMB: 25.5, RSSMaxMB: 26, Samples: 40},
		},
		Churn:    &ChurnStats{ReconnectPerS: 0.01, RotatePerS: 0.005, Reconnects: 200, Reconnected: 201, Rotations: 100, RotationsSkipped: 2},
		Pass:     false,
		Failures: []string{"lost 3 messages", "p99 | over <limit>"},
	}
}

// results makes n results per attack, as attackers hand them back: in
// completion order, each attacker numbering from 0 (the capacity steps
// reuse one attack name).
func results(attacks []string, steps, n int) []vegeta.Result {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var rs []vegeta.Result
	for _, a := range attacks {
		for step := range steps {
			for i := range n {
				r := vegeta.Result{
					Attack: a, Seq: uint64(i), Code: 200, Method: "POST",
					Timestamp: start.Add(time.Duration(step*n+i) * 10 * time.Millisecond),
					Latency:   time.Duration(1+i%7) * time.Millisecond,
				}
				if i%50 == 49 {
					r.Code, r.Error = 0, "connection reset"
				}
				rs = append(rs, r)
			}
		}
	}
	// Out of order, as results arrive from concurrent workers.
	for i := 0; i+1 < len(rs); i += 3 {
		rs[i], rs[i+1] = rs[i+1], rs[i]
	}
	return rs
}

func readOut(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", name)
	}
	return string(b)
}

// svgSeries parses an SVG as XML and returns its data-series ids and all
// its text.
func svgSeries(t *testing.T, doc string) (series []string, text string) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(doc))
	var txt strings.Builder
	root := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart.svg is not valid XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range tok.Attr {
				attr[a.Name.Local] = a.Value
			}
			if root {
				if tok.Name.Local != "svg" || attr["width"] != "720" || attr["height"] != "400" {
					t.Errorf("root element %s %v, want svg 720x400", tok.Name.Local, attr)
				}
				root = false
			}
			if id := attr["data-series"]; id != "" {
				series = append(series, id)
			}
		case xml.CharData:
			txt.Write(tok)
			txt.WriteByte('\n')
		}
	}
	return series, txt.String()
}

func wantContains(t *testing.T, name, doc string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(doc, w) {
			t.Errorf("%s lacks %q", name, w)
		}
	}
}

func checkSummaryJSON(t *testing.T, dir string, want *Summary) {
	t.Helper()
	var got Summary
	if err := json.Unmarshal([]byte(readOut(t, dir, SummaryFile)), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("summary.json round trip:\n got %+v\nwant %+v", got, *want)
	}
	// The field names capacity tools look for.
	var raw map[string]any
	json.Unmarshal([]byte(readOut(t, dir, SummaryFile)), &raw)
	for _, k := range []string{"scenario", "devices", "rate", "duration_s", "requests", "status_counts",
		"delivered", "lost", "duplicated", "misrouted", "latency_ms", "relay_cpu_percent", "relay_rss_mb"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("summary.json has no %q", k)
		}
	}
}

func TestReportCapacity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "capacity") // created by WriteReport
	s := capacitySummary()
	if err := WriteReport(dir, s, results([]string{"relay", "baseline"}, 5, 200)); err != nil {
		t.Fatal(err)
	}
	checkSummaryJSON(t, dir, s)

	series, text := svgSeries(t, readOut(t, dir, ChartFile))
	for _, id := range []string{"relay-p50", "relay-p99", "baseline-p50", "baseline-p99", "slo", "max-sustained"} {
		if !slices.Contains(series, id) {
			t.Errorf("chart.svg has no %s series (has %v)", id, series)
		}
	}
	wantContains(t, ChartFile, text, "relay p99", "baseline p50", "max sustained 800/s", "SLO p99 50 ms",
		"offered rate (webhooks/s)", "latency (ms, log scale)", "2000")

	md := readOut(t, dir, ReportFile)
	wantContains(t, ReportFile, md,
		"# Load test report: capacity", "**Result: PASS**",
		"```sh\n"+s.Command+"\n```", // the exact command, unescaped in its code block
		"Max sustained rate: 800 webhooks/s", "p99 is at most 50 ms",
		"| 1600 | 1598 | 1.2% |", "| 321 |", // the failing step
		"| 800 |", "yes", "no",
		"45.6 ms", "812 ms", "153% mean, 302% max", "88.4 MB",
		"200: 92990, 504: 7", "0 (transport error): 3",
		"![chart](chart.svg)", "How to read this", "ran at every capacity step",
		"| 800 | 799 | 0% | 3.20 | 8.00 | 48.0 | 320 | 6.00 | +42.0 | 80% | 84.0 | yes |",
		"## Connecting devices", "400/s",
		"| Webhooks over devices | zipf |", "2.00 ± 1.00 ms", "generator fell behind at 1600/s",
		"The baseline held up to 1600 webhooks/s",
	)

	html := readOut(t, dir, PlotFile)
	wantContains(t, PlotFile, html, "pixelrelay loadtest: capacity", "relay: OK", "baseline: ERROR")
}

func TestReportFanin(t *testing.T) {
	dir := t.TempDir()
	s := faninSummary()
	if err := WriteReport(dir, s, results([]string{"relay", "baseline"}, 1, 300)); err != nil {
		t.Fatal(err)
	}
	checkSummaryJSON(t, dir, s)

	series, text := svgSeries(t, readOut(t, dir, ChartFile))
	if !slices.Equal(series, []string{"relay", "baseline"}) {
		t.Errorf("chart.svg series %v, want relay and baseline", series)
	}
	wantContains(t, ChartFile, text, "fanin: webhook latency, relay vs baseline", "p50", "p90", "p99", "max", "7.75", "2.25", "41")

	md := readOut(t, dir, ReportFile)
	wantContains(t, ReportFile, md,
		"**Result: FAIL**", "- lost 3 messages", `p99 \| over \<limit\>`,
		"| Offered rate | 500 webhooks/s |", "| Lost | 3 |", "| Delivered | 9997 |",
		"## Relay vs baseline", "| p50 | 1.25 ms | 0.450 ms | +0.800 ms |", "| p99 | 7.75 ms | 2.25 ms | +5.50 ms |",
		"ratio 1.00", "100% of the baseline",
		"36% mean, 60% max", "![chart](chart.svg)",
		"| CPU (100% = one core) | 36% | 8.5% | +27% |", "| RSS | 40.5 MB | 25.5 MB | +15.0 MB |",
		"## Churn", "| Reconnects asked | 1.0% of devices/s |", "| Rotations asked | 0.5% of devices/s |", "| Sessions re-established | 201 |",
	)
	if strings.Contains(md, "## Capacity") || strings.Contains(md, "## Connecting devices") {
		t.Error("report.md has sections for figures this run does not have")
	}
	wantContains(t, PlotFile, readOut(t, dir, PlotFile), "relay: OK", "baseline: OK")
}

// A scenario without an attack (idle) and with text that needs escaping.
func TestReportNoAttack(t *testing.T) {
	dir := t.TempDir()
	s := &Summary{
		Scenario: `idle <&> "x"`, Devices: 5000, Connected: 5000, Pass: true,
		Memory: &MemoryStats{RSSBeforeMB: 20, RSSAfterMB: 70, PerDeviceKiB: 10.24, QUICDevices: 2500, WebTransDevices: 2500,
			ByTransport: []TransportMemory{
				{Transport: "quic", Devices: 5000, RSSBeforeMB: 20, RSSAfterMB: 60, PerDeviceKiB: 8.2},
				{Transport: "webtransport", Devices: 5000, RSSBeforeMB: 20, RSSAfterMB: 80, PerDeviceKiB: 12.3},
			}},
	}
	if err := WriteReport(dir, s, nil); err != nil {
		t.Fatal(err)
	}
	_, text := svgSeries(t, readOut(t, dir, ChartFile))
	wantContains(t, ChartFile, text, `idle <&> "x"`, "no webhook latency measured")
	html := readOut(t, dir, PlotFile)
	wantContains(t, PlotFile, html, "no attack", "idle &lt;&amp;&gt;")
	if strings.Contains(html, "<&>") {
		t.Error("plot.html does not escape the scenario name")
	}
	wantContains(t, ReportFile, readOut(t, dir, ReportFile), "## Memory of idle devices", "10.2 KiB", "(not recorded)",
		"| webtransport | 5000 | 20.0 | 80.0 | 12.3 |")
}

// The split by transport: connect figures only without webhooks (idle),
// and the webhooks' figures too with them.
func TestReportByTransport(t *testing.T) {
	byTransport := []TransportStats{
		{Transport: TransportQUIC, Devices: 60, Connected: 60, ConnectP50MS: 200, ConnectP99MS: 450, Webhooks: 600, OK: 600,
			Latency: LatencyMS{P50: 0.6, P90: 0.8, P99: 1.4, Max: 9}},
		{Transport: TransportWebSocket, Devices: 40, Connected: 40, ConnectP50MS: 160, ConnectP99MS: 350, Webhooks: 400, OK: 399,
			Latency: LatencyMS{P50: 0.47, P90: 0.6, P99: 1.05, Max: 6.9}},
	}
	idle := &Summary{Scenario: ScenarioIdle, Devices: 100, Connected: 100, Pass: true, ByTransport: byTransport}
	dir := t.TempDir()
	if err := WriteReport(dir, idle, nil); err != nil {
		t.Fatal(err)
	}
	md := readOut(t, dir, ReportFile)
	wantContains(t, ReportFile, md, "## By transport", "| websocket | 40 | 40 | 160 | 350 |\n")
	if strings.Contains(md, "| Webhooks |") {
		t.Error("an idle report has webhook columns by transport")
	}
	var table bytes.Buffer
	PrintTable(&table, idle)
	if got := table.String(); !strings.Contains(got, "40 devices (40 connected, p50 160 p99 350 ms)\n") {
		t.Errorf("idle table:\n%s", got)
	}

	fanin := faninSummary()
	fanin.ByTransport = byTransport
	dir = t.TempDir()
	if err := WriteReport(dir, fanin, nil); err != nil {
		t.Fatal(err)
	}
	wantContains(t, ReportFile, readOut(t, dir, ReportFile), "| websocket | 40 | 40 | 160 | 350 | 400 | 399 | 0.470 | 0.600 | 1.05 | 6.90 |")
	table.Reset()
	PrintTable(&table, fanin)
	if got := table.String(); !strings.Contains(got, "webhooks 400 (399 2xx)  p50 0.470") {
		t.Errorf("fanin table:\n%s", got)
	}
}

func TestReportOutIsFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if err := WriteReport(f, faninSummary(), nil); err == nil {
		t.Error("WriteReport into a regular file succeeded")
	}
}

func TestPrintTable(t *testing.T) {
	var b bytes.Buffer
	PrintTable(&b, capacitySummary())
	out := b.String()
	wantContains(t, "capacity table", out, "p99 45.6", "max rate", "800 webhooks/s", "1600", "PASS", "lost 0", "warning: generator fell behind", "baseline max", "zipf")
	if strings.Contains(out, "FAIL") {
		t.Error("a passing run prints FAIL")
	}
	t.Log("\n" + out)

	b.Reset()
	PrintTable(&b, faninSummary())
	out = b.String()
	wantContains(t, "fanin table", out, "p99 7.75", "baseline ms", "+5.50", "ratio 1.00", "FAIL", "- lost 3 messages", "CPU 8.5% mean", "reconnects 200")
	t.Log("\n" + out)
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, false)
	for _, ms := range []int{0, 300, 900, 1200, 1500, 1800} {
		p.Update(time.Duration(ms)*time.Millisecond, uint64(ms), 1000, 1.5, 9.25, 0)
	}
	p.Done()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	// 0 and 1.2 s when they came, 1.8 s held back until Done.
	if len(lines) != 3 || !strings.Contains(lines[1], "1200 requests") || !strings.Contains(lines[2], "1800 requests") {
		t.Errorf("plain progress, at most a line a second:\n%s", b.String())
	}
	wantContains(t, "progress", lines[0], "0s", "1000/s", "p50 1.50 ms", "p99 9.25 ms", "0 errors")
	if strings.Contains(b.String(), "\r") {
		t.Error("carriage return in plain output")
	}

	b.Reset()
	p = NewProgress(&b, true)
	p.Update(time.Second, 10, 10, 1, 2, 1)
	p.Update(2*time.Second, 20, 10, 1, 2, 1)
	p.Done()
	out := b.String()
	if strings.Count(out, "\r") != 2 || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("terminal progress %q: want two \\r-rewrites and one final newline", out)
	}
}

func TestReportTicks(t *testing.T) {
	for v, want := range map[float64]string{0.1 + 0.2: "0.3", 0.05: "0.05", 200: "200", 20000: "20k", 1500: "1500"} {
		if got := tick(v); got != want {
			t.Errorf("tick(%v) = %q, want %q", v, got, want)
		}
	}
	if got := niceStep(1600, 6); got != 500 {
		t.Errorf("niceStep(1600, 6) = %v, want 500", got)
	}
}

func soakSummary() *Summary {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &Summary{
		Scenario: "soak", Devices: 2000, Connected: 2000, Transport: "mixed",
		Rate: 200, DurationS: 60, Target: "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
		Command:         "loadtest --scenario soak --nodes 3 --restart-every 20s --duration 60s",
		Requests:        12000,
		StatusCounts:    map[string]uint64{"200": 11990, "404": 8, "502": 2},
		Throughput:      199.8,
		Delivered:       11990,
		Latency:         LatencyMS{P50: 1.2, P90: 10, P99: 450, Max: 900, Mean: 15},
		Relay:           ProcessStats{CPUPercent: 40, CPUMaxPct: 160, RSSMB: 250, RSSMaxMB: 460, Samples: 720},
		RelayCPUPercent: 40, RelayRSSMB: 250,
		Churn: &ChurnStats{ReconnectPerS: 0.05, RotatePerS: 0.01, Reconnects: 6000, Reconnected: 5990, Rotations: 1200},
		Cluster: &ClusterStats{
			NATSURL: "nats://127.0.0.1:4222",
			NATS:    ProcessStats{PID: 99, CPUPercent: 5.2, CPUMaxPct: 13, RSSMB: 29, RSSMaxMB: 29.5, Samples: 240},
			Nodes: []NodeStats{
				{Node: 0, Addr: "127.0.0.1:1", Admin: "127.0.0.1:11", PIDs: []int{10, 13}, Webhooks: 4000, Devices: 1300,
					Process: ProcessStats{PID: 13, CPUPercent: 12, CPUMaxPct: 51, RSSMB: 150, RSSMaxMB: 155, Samples: 240}},
				{Node: 1, Addr: "127.0.0.1:2", Admin: "127.0.0.1:12", PIDs: []int{11, 14}, Webhooks: 4100, Devices: 700,
					Process: ProcessStats{PID: 14, CPUPercent: 13, CPUMaxPct: 52, RSSMB: 90, RSSMaxMB: 127, Samples: 240}},
				{Node: 2, Addr: "127.0.0.1:3", Admin: "127.0.0.1:13", PIDs: []int{12, 15}, Webhooks: 3900, Devices: 0,
					Process: ProcessStats{PID: 15, CPUPercent: 15, CPUMaxPct: 59, RSSMB: 16, RSSMaxMB: 184, Samples: 240}},
			},
			Local: 4000, CrossNode: 7990, CrossNodeShare: 7990.0 / 11990,
			LocalLatency:     LatencyMS{P50: 0.8, P90: 5, P99: 400, Max: 800, Mean: 10},
			CrossNodeLatency: LatencyMS{P50: 1.4, P90: 15, P99: 480, Max: 900, Mean: 17},
			Moves:            3300, MovesFailed: 1,
		},
		NonOK: map[string]uint64{"404 no_device": 8, "502 device_gone": 2},
		Soak: &SoakStats{
			RestartEveryS: 20, OutsideS: 45, OutsideNonOK: 6, OutsideNonOKChurn: 5,
			Restarts: []RestartStats{
				{Node: 0, At: at, AtS: 10, SettleS: 0.004, DrainS: 5.1, EmptyS: 5.0, BackS: 0.015, OutS: 5.12, PID: 13,
					Devices: 667, Moved: 667, Requests: 1024, NonOK: 3, NonOKChurn: 3, NonOKByCode: map[string]uint64{"404 no_device": 2, "502 device_gone": 1},
					Samples: []FailureSample{{AfterTermS: 0.45, Answer: "404 no_device", LatencyMS: 747, WebhookNode: 1, Device: 1579, DeviceNode: -1,
						Events: []string{"-0.335 s hung up by churn (node 1)"}, Churn: true}}},
				{Node: 1, At: at.Add(20 * time.Second), AtS: 30, DrainS: 5.2, EmptyS: -1, BackS: 0.02, OutS: 5.22, PID: 14,
					Devices: 1016, Moved: 1015, MovesFailed: 1, Requests: 1040, NonOK: 1, NonOKByCode: map[string]uint64{"404 no_device": 1},
					Samples: []FailureSample{{AfterTermS: 4.9, Answer: "404 no_device", LatencyMS: 640, WebhookNode: 0, Device: 1752, DeviceNode: 2,
						Events: []string{"+0.283 s GOAWAY (node 2)"}}}},
			},
			Timeline: []SecondStats{{S: 0, Requests: 200, P50MS: 1.1, P99MS: 15}, {S: 1, Requests: 200, NonOK: 2, P50MS: 1.3, P99MS: 400}, {S: 2, Requests: 200, P50MS: 1.2, P99MS: 20}},
		},
		Pass: true,
	}
	return s
}

func TestReportSoak(t *testing.T) {
	dir := t.TempDir()
	s := soakSummary()
	if err := WriteReport(dir, s, results([]string{"relay"}, 1, 100)); err != nil {
		t.Fatal(err)
	}
	checkSummaryJSON(t, dir, s)

	series, text := svgSeries(t, readOut(t, dir, ChartFile))
	for _, id := range []string{"restarts", "non-2xx", "p50", "p99"} {
		if !slices.Contains(series, id) {
			t.Errorf("chart.svg has no %s series (has %v)", id, series)
		}
	}
	wantContains(t, ChartFile, text, "soak: latency and answers other than 2xx, second by second", "node 0", "node 1", "seconds into the attack")

	md := readOut(t, dir, ReportFile)
	wantContains(t, ReportFile, md,
		"| Relay (3 nodes together) CPU | 40% mean, 160% max (100% = one core) |",
		"## Cluster", "| 0 | 127.0.0.1:1 | 10, 13 | 4000 | 1300 | 12% | 51% | 150.0 MB | 155.0 MB |",
		"| NATS | | 99 | | | 5.2% | 13% | 29.0 MB | 29.5 MB |",
		"| Local: device on the webhook's node | 4000 | 33% | 0.800 | 5.00 | 400 | 800 |",
		"| Cross-node: device on another node | 7990 | 67% | 1.40 | 15.0 | 480 | 900 |",
		"added +0.600 ms at p50 and +80.0 ms at p99", "moved make-before-break 3300 times", "1 moves failed",
		"## Answers other than 2xx", "| 404 no\\_device | 8 |", "| 502 device\\_gone | 2 |",
		"## Rolling restart", "Every 20 s the next node",
		"| 1 | 0 | 10.0 | 0.004 | 5.100 | 5.000 | 0.015 | 5.120 | 667 | 667 | 0 | 1024 | 3 | 3 | 404 no\\_device: 2, 502 device\\_gone: 1 |",
		"| 2 | 1 | 30.0 | 0.000 | 5.200 | – | 0.020 | 5.220 | 1016 | 1015 | 1 | 1040 | 1 | 0 | 404 no\\_device: 1 |",
		"Outside the restarts' windows (45.0 s): 6 answers other than 2xx, 0.133/s, 5 of them to devices churn",
		"- restart 2, 4.900 s after SIGTERM: 404 no\\_device after 640 ms, sent to node 0 for device 1752 on node 2; device: +0.283 s GOAWAY (node 2)",
		"## Churn",
	)
	var b bytes.Buffer
	PrintTable(&b, s)
	wantContains(t, "soak table", b.String(), "node 2", "pids 12, 15", "nats", "cross-node  67% of 11990 deliveries",
		"local p50 0.800 p99 400 ms  cross-node p50 1.40 p99 480 ms", "3300 make-before-break, 1 failed",
		"404 no_device: 8, 502 device_gone: 2", "restart 1", "node 0 at 10.0 s", "3 of 1024 webhooks not 2xx (3 churn;",
		"outside", "PASS")
	t.Log("\n" + b.String())
}

func TestReportCluster(t *testing.T) {
	dir := t.TempDir()
	s := soakSummary()
	s.Scenario, s.Soak, s.Churn, s.NonOK = "cluster", nil, nil, nil
	s.Baseline = &BaselineStats{Requests: 12000, Throughput: 200, Latency: LatencyMS{P50: 0.3, P90: 0.5, P99: 0.8, Max: 4}}
	if err := WriteReport(dir, s, results([]string{"relay", "baseline"}, 1, 100)); err != nil {
		t.Fatal(err)
	}
	series, text := svgSeries(t, readOut(t, dir, ChartFile))
	if !slices.Equal(series, []string{"relay", "local", "cross-node", "baseline"}) {
		t.Errorf("chart.svg series %v, want relay, local, cross-node and baseline", series)
	}
	wantContains(t, ChartFile, text, "cluster: webhook latency, local and cross-node deliveries")
	md := readOut(t, dir, ReportFile)
	wantContains(t, ReportFile, md, "## Cluster", "None: every webhook was answered 2xx.", "## Relay vs baseline")
	if strings.Contains(md, "## Rolling restart") {
		t.Error("a cluster report has a rolling restart")
	}
}
