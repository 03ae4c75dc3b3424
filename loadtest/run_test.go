package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// buildCommands builds the relay and the loadtest binary (the baseline
// server's process) into a temporary directory, as `make loadtest` does.
func buildCommands(t *testing.T) (relay, loadtest string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", dir+string(filepath.Separator), "../cmd/relay", "../cmd/loadtest")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the relay and loadtest in %v", time.Since(start).Round(time.Millisecond))
	return filepath.Join(dir, "relay"), filepath.Join(dir, "loadtest")
}

// TestSmoke runs the suite for real on a small scale, so that it cannot
// rot: a relay process, 200 devices (some over WebTransport), 300
// webhooks/s for 3 s, the baseline in its own process, and the report.
// Every webhook must be answered 200 and delivered exactly once.
func TestSmoke(t *testing.T) {
	relay, loadtest := buildCommands(t)
	out := filepath.Join(t.TempDir(), "out")
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{
		Scenario:          ScenarioFanin,
		Devices:           200,
		WebTransportShare: 0.2,
		Rate:              300,
		Duration:          3 * time.Second,
		Out:               out,
		RelayBin:          relay,
		Baseline:          true,
		BaselineBin:       loadtest,
		Command:           "go test ./loadtest -run TestSmoke",
	}
	start := time.Now()
	s, err := Run(ctx, cfg, &logs)
	t.Logf("run took %v; its log:\n%s", time.Since(start).Round(time.Millisecond), logs.String())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pass {
		// A busy CI machine may fail the error budget; accounting never.
		t.Errorf("run failed: %q", s.Failures)
	}
	if s.Lost+s.Duplicated+s.Misrouted != 0 {
		t.Errorf("lost %d, duplicated %d, misrouted %d", s.Lost, s.Duplicated, s.Misrouted)
	}
	if s.Requests < 800 || s.StatusCounts["200"] != s.Requests || s.Delivered != s.Requests {
		t.Errorf("requests %d, status %v, delivered %d: want ~900, all 200 and delivered", s.Requests, s.StatusCounts, s.Delivered)
	}
	if s.Connected != 200 || s.Transport != "mixed" || s.Connect == nil || s.Connect.Failed != 0 {
		t.Errorf("swarm: %d connected over %s, connect %+v", s.Connected, s.Transport, s.Connect)
	}
	if s.Relay.PID == 0 || s.Relay.Samples < 2 || s.RelayRSSMB <= 0 {
		t.Errorf("relay not sampled: %+v", s.Relay)
	}
	if b := s.Baseline; b == nil || b.Requests < 800 || b.Process == nil || b.Process.PID == s.Relay.PID {
		t.Errorf("baseline: %+v", b)
	}
	if s.Latency.P50 <= 0 || s.Latency.P99 < s.Latency.P50 {
		t.Errorf("latency %+v", s.Latency)
	}

	for _, f := range []string{SummaryFile, ReportFile, ChartFile, PlotFile} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if back.Requests != s.Requests || back.Delivered != s.Delivered || back.Scenario != ScenarioFanin || back.Pass != s.Pass {
		t.Errorf("summary.json disagrees with the Summary: %+v", back)
	}
	if !strings.Contains(logs.String(), "200/200 devices connected") {
		t.Errorf("no connect line in the log")
	}
}
