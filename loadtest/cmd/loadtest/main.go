// Command loadtest measures how many devices and webhooks per second one
// relay node carries, at what latency, CPU and memory: it starts the relay
// as its own process (or attacks one given with --target), connects a swarm
// of simulated devices, sends webhooks with vegeta, accounts for every
// message, runs the same attack against a bare TLS handler as a baseline,
// and writes the results into --out. The cluster and soak scenarios start
// a NATS server and several relay nodes instead; soak restarts them in turn
// under churn. The fleet scenario measures a realistic fleet, mostly idle,
// per 1,000 devices. --floors compares the relay with bare quic-go,
// webtransport-go and WebSocket servers doing only the device leg; --pin puts the
// servers and the generator on CPUs of their own.
//
// Every flag can also be set from the environment: --devices is
// LOADTEST_DEVICES, and so on. Flags win over the environment.
//
// The exit status is 0 when the run passed, 1 when it failed (lost,
// duplicated or misrouted messages, or the scenario's own check) or could
// not be made, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pixelrelay/relay/internal/flagenv"
	"github.com/pixelrelay/relay/loadtest"
)

const envPrefix = "LOADTEST"

func main() {
	// The baseline server, the floors and a cluster's NATS server are this
	// binary in another process.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case loadtest.BaselineFlag:
			os.Exit(loadtest.BaselineMain(os.Args[1:]))
		case loadtest.FloorFlag:
			os.Exit(loadtest.FloorMain(os.Args[1:]))
		case loadtest.NATSFlag:
			os.Exit(loadtest.NATSMain(os.Args[1:]))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

// options are the parsed command line.
type options struct {
	cfg loadtest.Config
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	c := &o.cfg
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Scenario, "scenario", loadtest.ScenarioFanin, "`name`: "+strings.Join(loadtest.Scenarios, ", "))
	fs.IntVar(&c.Devices, "devices", loadtest.DefaultDevices, fmt.Sprintf("simulated devices (fleet: %d)", loadtest.DefaultFleetDevices))
	fs.Float64Var(&c.Rate, "rate", loadtest.DefaultRate, fmt.Sprintf("webhooks per second (capacity: the first step and the increment; fleet: one per device every %v, --devices/%.0f, may be below 1)",
		loadtest.FleetWebhookEvery, loadtest.FleetWebhookEvery.Seconds()))
	fs.DurationVar(&c.Duration, "duration", loadtest.DefaultDuration, fmt.Sprintf("the attack (capacity uses --step and --max-steps; soak defaults to --nodes times --restart-every, a rolling restart of every node once; fleet: the steady window, %v)",
		loadtest.DefaultFleetDuration))
	fs.StringVar(&c.Out, "out", "./loadtest-out", "`dir` for summary.json, report.md, chart.svg and plot.html; empty writes none")

	fs.StringVar(&c.RelayBin, "relay-bin", "", "relay `binary` to start (default: relay next to this binary)")
	fs.StringVar(&c.Target, "target", "", "attack a running relay at `HOST:PORT` instead of starting one")
	fs.StringVar(&c.CAFile, "ca", "", "PEM CA `file` that signs the --target relay's certificate")
	fs.IntVar(&c.TargetPID, "target-pid", 0, "`pid` of the --target relay, for CPU and memory (default: found from its listening socket)")
	fs.Func("relay-flag", "extra `flag` for the started relay, e.g. --relay-flag=--ip-rate=200 (repeat; the suite turns the webhook rate limits off unless told otherwise)", func(v string) error {
		c.RelayArgs = append(c.RelayArgs, v)
		return nil
	})
	fs.IntVar(&c.MaxInflight, "max-inflight", 0, "the started relay's --max-inflight (0: its default)")
	fs.DurationVar(&c.AckTimeout, "ack-timeout", 0, "the started relay's --ack-timeout (0: its default)")

	fs.Float64Var(&c.WebTransportShare, "webtransport-share", 0.1, "fraction of devices on WebTransport instead of raw QUIC, 0..1 (fleet: 0)")
	fs.Float64Var(&c.WebSocketShare, "websocket-share", 0, "fraction of devices on WebSocket over TCP instead of raw QUIC, 0..1; with --webtransport-share at most 1")
	fs.Float64Var(&c.MQTTShare, "mqtt-share", 0, "fraction of devices that are stock AWTRIX 3 clocks on MQTT (the relay is started with --mqtt on a loopback port), 0..1; "+
		"with the other shares at most 1; idle then also measures mosquitto with as many clocks (mqttstorm: all MQTT)")
	fs.StringVar(&c.MQTTTarget, "mqtt-target", "", "the --target relay's plain MQTT listener `HOST:PORT`, for --mqtt-share")
	fs.StringVar(&c.Dist, "dist", "", "webhooks over devices: uniform, zipf or hot (default uniform; hot for --scenario hot)")
	fs.Float64Var(&c.BitmapShare, "bitmap-share", loadtest.DefaultBitmapShare, "fraction of webhooks that are 1.6-2.4 KB bitmaps (negative: none)")
	fs.DurationVar(&c.AckDelay, "ack-delay", 0, "devices wait this before acking (0: the scenario's, slow 200ms, hot 50ms)")
	fs.DurationVar(&c.AckJitter, "ack-jitter", 0, "± uniform jitter on --ack-delay (slow: 100ms)")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 0, fmt.Sprintf("devices connecting per second; 0 is all at once, 256 in flight (fleet: %d)", loadtest.DefaultFleetConnectRate))
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", loadtest.DefaultConnectTimeout, "for the whole swarm to connect, beyond the --connect-rate schedule")

	fs.BoolVar(&c.Baseline, "baseline", true, "also attack a bare fasthttp TLS handler and report relay minus baseline (in "+loadtest.Enumerate(loadtest.BaselineScenarios)+")")
	fs.BoolVar(&c.Floors, "floors", false, strings.Join(loadtest.FloorScenarios, ", ")+": after the relay, run the same swarm and attack against bare floor servers "+
		"(quic-go, webtransport-go or WebSocket devices, a fasthttp webhook frontend, nothing else) and report CPU per webhook, RSS per device, "+
		"handshakes/s and relay minus floor; each floor is its own process; about doubles the run")
	fs.BoolVar(&c.Pin, "pin", false, "pin the servers under test (relay, floors, baseline, NATS) to one CPU and this process (generator and devices) "+
		"to another, for the whole run (Linux, at least 2 CPUs)")
	fs.DurationVar(&c.SLO, "slo", loadtest.DefaultSLO, "capacity: the p99 a step must hold")
	fs.DurationVar(&c.Step, "step", loadtest.DefaultStep, "capacity: each step's length")
	fs.IntVar(&c.MaxSteps, "max-steps", loadtest.DefaultMaxSteps, "capacity: at most this many steps")
	fs.Float64Var(&c.MaxRate, "max-rate", 0, "capacity: stop before exceeding this rate (0: no limit)")
	fs.Float64Var(&c.MaxErrorRate, "max-error-rate", 0, "fraction of webhooks allowed to fail in fanin, storm, slow, cluster, fleet and a capacity step")
	fs.Float64Var(&c.ChurnReconnect, "churn-reconnect", loadtest.DefaultChurnReconnect, "churn and soak: fraction of the devices per second that hang up and reconnect (negative: none)")
	fs.Float64Var(&c.ChurnRotate, "churn-rotate", loadtest.DefaultChurnRotate, "churn and soak: fraction of the devices per second that rotate their token (negative: none)")
	fs.IntVar(&c.Nodes, "nodes", 0, fmt.Sprintf("%s: relay nodes joined by a NATS server (0: %d); device i starts on node i mod nodes, webhooks go to the ready nodes at random",
		loadtest.Enumerate(loadtest.ClusterScenarios), loadtest.DefaultNodes))
	fs.DurationVar(&c.RestartEvery, "restart-every", loadtest.DefaultRestartEvery, "soak: restart the next node in turn this often (out of rotation, SIGTERM, start again, /readyz, back), the i-th at (i+1/2) times this")
	fs.DurationVar(&c.IdleSettle, "idle-settle", loadtest.DefaultIdleSettle, fmt.Sprintf("idle: how long devices sit before the relay's memory is read; fleet: the window with keep-alives only before the webhooks (%v)",
		loadtest.DefaultFleetIdle))
	if err := flagenv.Parse(fs, args, envPrefix, "Load tests a relay node or a cluster: a device swarm, webhooks with vegeta, exact accounting, a baseline."); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.Scenario == loadtest.ScenarioSoak && !set["duration"] {
		c.Duration = 0 // the soak's own default
	}
	if c.Scenario == loadtest.ScenarioFleet {
		fleetDefaults(c, set)
	}
	if c.Target == "" && c.RelayBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("--relay-bin: %w", err)
		}
		c.RelayBin = filepath.Join(filepath.Dir(exe), "relay")
	}
	if exe, err := os.Executable(); err == nil {
		c.BaselineBin = exe
	}
	return o, nil
}

// fleetDefaults clears the flags the fleet scenario has defaults of its
// own for (loadtest's fleet.go), unless they were set: its fleet is large,
// slow to get webhooks, and QUIC only.
func fleetDefaults(c *loadtest.Config, set map[string]bool) {
	if !set["devices"] {
		c.Devices = 0
	}
	if !set["rate"] {
		c.Rate = 0
	}
	if !set["duration"] {
		c.Duration = 0
	}
	if !set["idle-settle"] {
		c.IdleSettle = 0
	}
	if !set["webtransport-share"] {
		c.WebTransportShare = 0
	}
}

func run(ctx context.Context, argv []string, stdout, stderr io.Writer) int {
	o, err := parse(argv[1:], stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	o.cfg.Command = shellQuote(argv)
	start := time.Now()
	s, err := loadtest.Run(ctx, o.cfg, stderr)
	if s != nil {
		fmt.Fprintln(stdout)
		loadtest.PrintTable(stdout, s)
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 1
	}
	if o.cfg.Out != "" {
		fmt.Fprintf(stderr, "loadtest: results in %s (%.0f s)\n", o.cfg.Out, time.Since(start).Seconds())
	}
	if !s.Pass {
		return 1
	}
	return 0
}

// shellQuote joins args for a POSIX shell.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
