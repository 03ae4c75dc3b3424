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
