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
		"LOADTEST_ACK_DELAY", "LOADTEST_ACK_JITTER", "LOADTEST_CONNECT_RATE", "LOADTEST_BASELINE", "LOADTEST_SLO", "LOADTEST_STEP",
		"LOADTEST_NODES", "LOADTEST_RESTART_EVERY", "LOADTEST_CHURN_RECONNECT", "LOADTEST_CHURN_ROTATE",
		"LOADTEST_FLOORS", "LOADTEST_PIN", "LOADTEST_IDLE_SETTLE"} {
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

// A soak runs for --nodes times --restart-every unless told otherwise.
func TestSoakDuration(t *testing.T) {
	o, err := parse([]string{"--scenario", "soak", "--nodes", "4", "--restart-every", "30s", "--churn-rotate", "-1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := o.cfg; c.Duration != 0 || c.Nodes != 4 || c.RestartEvery != 30*time.Second || c.ChurnRotate != -1 {
		t.Fatalf("soak: duration %v, %d nodes, every %v, rotate %v: want 0 (its own default), 4, 30s, -1", c.Duration, c.Nodes, c.RestartEvery, c.ChurnRotate)
	}
	o, _ = parse([]string{"--scenario", "soak", "--duration", "3m"}, io.Discard)
	if o.cfg.Duration != 3*time.Minute {
		t.Fatalf("soak --duration 3m: %v", o.cfg.Duration)
	}
	o, _ = parse([]string{"--scenario", "fanin"}, io.Discard)
	if o.cfg.Duration != 30*time.Second {
		t.Fatalf("fanin: %v, want the 30s default", o.cfg.Duration)
	}
	t.Setenv("LOADTEST_DURATION", "2m")
	o, _ = parse([]string{"--scenario", "soak"}, io.Discard)
	if o.cfg.Duration != 2*time.Minute {
		t.Fatalf("soak with LOADTEST_DURATION=2m: %v", o.cfg.Duration)
	}
}

// The fleet scenario takes its own defaults for what the command line does
// not set, and --floors and --pin are off unless asked for.
func TestFleetAndCostFlags(t *testing.T) {
	o, err := parse([]string{"--scenario", "fleet"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := o.cfg; c.Devices != 0 || c.Rate != 0 || c.Duration != 0 || c.IdleSettle != 0 || c.WebTransportShare != 0 || c.Floors || c.Pin {
		t.Fatalf("fleet: devices %d, rate %v, duration %v, idle %v, share %v, floors %v, pin %v: want zeros (the fleet's defaults) and off",
			c.Devices, c.Rate, c.Duration, c.IdleSettle, c.WebTransportShare, c.Floors, c.Pin)
	}
	t.Setenv("LOADTEST_PIN", "1")
	o, err = parse([]string{"--scenario", "fleet", "--devices", "2000", "--rate", "0.5", "--duration", "30s", "--idle-settle", "10s",
		"--webtransport-share", "0.2", "--floors"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := o.cfg; c.Devices != 2000 || c.Rate != 0.5 || c.Duration != 30*time.Second || c.IdleSettle != 10*time.Second ||
		c.WebTransportShare != 0.2 || !c.Floors || !c.Pin {
		t.Fatalf("fleet with flags: %+v", c)
	}
	// Other scenarios keep the usual defaults.
	o, _ = parse([]string{"--scenario", "idle"}, io.Discard)
	if c := o.cfg; c.Devices != 2000 || c.WebTransportShare != 0.1 || c.IdleSettle != 3*time.Second {
		t.Fatalf("idle: devices %d, share %v, idle %v", c.Devices, c.WebTransportShare, c.IdleSettle)
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
	// Several nodes are for the cluster scenarios only.
	stderr.Reset()
	if code := run(context.Background(), []string{"loadtest", "--nodes", "3", "--out", ""}, io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "only the cluster and soak") {
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
