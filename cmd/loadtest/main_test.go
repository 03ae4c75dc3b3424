package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestHelpNamesEveryEnvVar(t *testing.T) {
	var out bytes.Buffer
	if _, err := parse([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, env := range []string{"LOADTEST_SCENARIO", "LOADTEST_DEVICES", "LOADTEST_RATE", "LOADTEST_DURATION", "LOADTEST_OUT",
		"LOADTEST_TARGET", "LOADTEST_CA", "LOADTEST_RELAY_BIN", "LOADTEST_WEBTRANSPORT_SHARE", "LOADTEST_DIST",
		"LOADTEST_ACK_DELAY", "LOADTEST_ACK_JITTER", "LOADTEST_CONNECT_RATE", "LOADTEST_BASELINE", "LOADTEST_SLO", "LOADTEST_STEP"} {
		if !strings.Contains(out.String(), env) {
			t.Errorf("--help does not mention %s", env)
		}
	}
}

func TestEnvironmentAndFlags(t *testing.T) {
	t.Setenv("LOADTEST_DEVICES", "123")
	t.Setenv("LOADTEST_SCENARIO", "capacity")
	t.Setenv("LOADTEST_BASELINE", "false")
	o, err := parse([]string{"--scenario", "hot", "--slo", "20ms", "--relay-flag=--max-inflight=8", "--relay-flag=--ip-rate=50"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Devices != 123 || c.Scenario != "hot" || c.Baseline || c.SLO != 20*time.Millisecond {
		t.Fatalf("devices %d, scenario %s, baseline %v, slo %v: want 123 and false from the environment, hot and 20ms from flags",
			c.Devices, c.Scenario, c.Baseline, c.SLO)
	}
	if len(c.RelayArgs) != 2 || c.RelayArgs[1] != "--ip-rate=50" {
		t.Fatalf("relay args %q", c.RelayArgs)
	}
	if c.RelayBin == "" || c.BaselineBin == "" {
		t.Fatalf("relay bin %q, baseline bin %q: want defaults next to this binary", c.RelayBin, c.BaselineBin)
	}
}

func TestBadUsage(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"loadtest", "--devices", "many"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2; %s", code, stderr.String())
	}
	// An unknown scenario is refused before anything starts.
	stderr.Reset()
	if code := run(context.Background(), []string{"loadtest", "--scenario", "nope", "--out", ""}, io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "unknown scenario") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"bin/loadtest", "--out", "./my out", "--dist=zipf", "it's"})
	want := `bin/loadtest --out './my out' --dist=zipf 'it'\''s'`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
