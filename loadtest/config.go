package loadtest

import (
	"errors"
	"fmt"
	"time"
)

// Config is one run. Zero values take the defaults below (and the
// scenario's own, noted per field).
type Config struct {
	Scenario string // one of Scenarios; default ScenarioFanin
	Devices  int
	Rate     float64 // webhooks/s; capacity: the first step and the increment
	// Duration is the attack; capacity uses Step and MaxSteps instead. A
	// soak defaults to Nodes*RestartEvery: a rolling restart of every node
	// once.
	Duration time.Duration
	Out      string // directory for the report files; "" writes none

	// The relay: the suite starts RelayBin as its own process, unless
	// Target names one already running (HOST:PORT, TCP and UDP), whose
	// certificate CAFile signs and whose PID is TargetPID (found from its
	// listening socket when 0).
	RelayBin  string
	RelayArgs []string // extra flags for a started relay
	Target    string
	CAFile    string
	TargetPID int
	// MaxInflight and AckTimeout are passed to a started relay when set.
	MaxInflight int
	AckTimeout  time.Duration

	// WebTransportShare is the fraction of devices on WebTransport (0..1;
	// 0 is all raw QUIC), WebSocketShare the fraction on WebSocket over
	// TCP, MQTTShare the fraction of stock AWTRIX 3 clocks on MQTT (the
	// started relay listens with --mqtt on a loopback port); together at
	// most 1.
	WebTransportShare float64
	WebSocketShare    float64
	MQTTShare         float64
	// MQTTTarget is the --target relay's plain MQTT listener (HOST:PORT),
	// which its MQTT clocks dial; needed with MQTTShare and Target.
	MQTTTarget  string
	Dist        string  // uniform (default), zipf or hot (the hot scenario's)
	BitmapShare float64 // fraction of full-frame bitmap bodies; 0 is DefaultBitmapShare, negative none
	// AckDelay and AckJitter slow the devices' replies (slow: 200 ms ±
	// 100 ms; hot: 50 ms, so that one device's in-flight cap fills).
	AckDelay, AckJitter time.Duration
	ConnectRate         float64 // devices/s; 0 is all at once (bounded in flight)
	// ConnectTimeout bounds the swarm's login beyond its ConnectRate
	// schedule (Devices/ConnectRate).
	ConnectTimeout time.Duration

	// ClusterScenarios (cluster, soak): Nodes relay processes (default 3),
	// joined by a NATS server that BaselineBin serves in a process of its
	// own (NATSArgs). Device i starts on node i mod Nodes; webhooks go to
	// the nodes at random. Soak restarts the next node in turn every
	// RestartEvery (default 1m), the i-th at (i+1/2)*RestartEvery into the
	// attack.
	Nodes        int
	RestartEvery time.Duration

	// Baseline runs the same attack against a bare fasthttp TLS handler,
	// in BaselineScenarios (not idle, which sends no webhook, nor soak and
	// fleet, whose attacks are long and not about latency).
	// BaselineBin is the loadtest binary, run as a separate process with
	// BaselineArgs (and NATSArgs for a cluster); empty serves both in this
	// process.
	Baseline    bool
	BaselineBin string

	// Floors runs, after the relay, the same attack against bare servers
	// that do only the device leg (floor.go), each with a fresh swarm of
	// the same size: floor-quic for raw QUIC devices, floor-webtransport
	// for WebTransport ones, floor-websocket for WebSocket ones, each of
	// its transports' for a mixed swarm. Relay minus floor is
	// the relay's own overhead. Only in FloorScenarios (fanin, storm,
	// capacity, idle); each floor runs in its own process (BaselineBin),
	// or in this one without it.
	Floors bool

	// Pin pins the servers under test (relay, floors, baseline, NATS) to
	// one CPU and this process (the generator and the swarm) to another,
	// for the whole run (Linux, at least 2 CPUs).
	Pin bool

	// Capacity: steps of Step at Rate, 2*Rate, ... until p99 exceeds SLO,
	// the error rate exceeds MaxErrorRate, MaxRate (0: none) or MaxSteps.
	SLO      time.Duration
	Step     time.Duration
	MaxSteps int
	MaxRate  float64
	// MaxErrorRate is the fraction of webhooks allowed to fail (not 2xx) in
	// fanin, storm, slow, cluster and fleet (errorBudget), and in a
	// capacity step that holds; default 0.
	MaxErrorRate float64

	// Churn and soak: fractions of the devices per second that reconnect
	// and that rotate their token over the live session; negative: none.
	ChurnReconnect, ChurnRotate float64

	// IdleSettle is how long idle devices sit before memory is read. In
	// fleet it is the window with keep-alives only before the webhooks
	// (default DefaultFleetIdle, longer than the devices' keep-alive
	// period).
	IdleSettle time.Duration

	// Fleet: Devices defaults to DefaultFleetDevices connecting at
	// ConnectRate (default DefaultFleetConnectRate), Rate to one webhook per
	// device every FleetWebhookEvery (Devices/600 per second; it may be
	// below 1), Duration to DefaultFleetDuration.

	// Command is the command line, copied into the Summary.
	Command string
}

// Defaults.
const (
	DefaultDevices        = 2000
	DefaultRate           = 2000
	DefaultDuration       = 30 * time.Second
	DefaultConnectTimeout = 60 * time.Second
	DefaultSLO            = 50 * time.Millisecond
	DefaultStep           = 5 * time.Second
	DefaultMaxSteps       = 12
	DefaultChurnReconnect = 0.05
	DefaultChurnRotate    = 0.01
	DefaultIdleSettle     = 3 * time.Second
	DefaultNodes          = 3
	DefaultRestartEvery   = time.Minute
)

// withDefaults fills in the defaults, the scenario's first, and checks the
// configuration.
func (c Config) withDefaults() (Config, error) {
	if c.Scenario == "" {
		c.Scenario = ScenarioFanin
	}
	sc, ok := scenarioNamed(c.Scenario)
	if !ok {
		return c, fmt.Errorf("loadtest: unknown scenario %q; one of %v", c.Scenario, Scenarios)
	}
	in := sc.info()
	if in.cluster {
		if c.Nodes <= 0 {
			c.Nodes = DefaultNodes
		}
		if c.Target != "" {
			return c, fmt.Errorf("loadtest: %s starts its own nodes; --target is for one relay", c.Scenario)
		}
	} else if c.Nodes > 1 {
		return c, fmt.Errorf("loadtest: %d nodes: only the %s scenarios run several", c.Nodes, Enumerate(ClusterScenarios))
	}
	defaultTo(&c.RestartEvery, DefaultRestartEvery)
	if err := sc.defaults(&c); err != nil {
		return c, err
	}
	if c.Devices <= 0 {
		c.Devices = DefaultDevices
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Rate < 1 && !in.subRate {
		return c, errors.New("loadtest: rate must be at least 1 webhook/s")
	}
	defaultTo(&c.Duration, DefaultDuration)
	defaultTo(&c.ConnectTimeout, DefaultConnectTimeout)
	defaultTo(&c.SLO, DefaultSLO)
	defaultTo(&c.Step, DefaultStep)
	defaultTo(&c.IdleSettle, DefaultIdleSettle)
	if c.MaxSteps <= 0 {
		c.MaxSteps = DefaultMaxSteps
	}
	switch {
	case c.ChurnReconnect == 0:
		c.ChurnReconnect = DefaultChurnReconnect
	case c.ChurnReconnect < 0:
		c.ChurnReconnect = 0
	}
	switch {
	case c.ChurnRotate == 0:
		c.ChurnRotate = DefaultChurnRotate
	case c.ChurnRotate < 0:
		c.ChurnRotate = 0
	}
	switch {
	case c.BitmapShare == 0:
		c.BitmapShare = DefaultBitmapShare
	case c.BitmapShare < 0:
		c.BitmapShare = 0
	}
	if c.WebTransportShare < 0 || c.WebTransportShare > 1 {
		return c, errors.New("loadtest: webtransport share must be in 0..1")
	}
	if c.WebSocketShare < 0 || c.WebSocketShare+c.WebTransportShare > 1 {
		return c, errors.New("loadtest: websocket share must be in 0..1, and with the webtransport share at most 1")
	}
	if c.MQTTShare < 0 || c.MQTTShare+c.WebSocketShare+c.WebTransportShare > 1+1e-9 {
		return c, errors.New("loadtest: mqtt share must be in 0..1, and with the webtransport and websocket shares at most 1")
	}
	if c.MQTTShare > 0 && c.Target != "" && c.MQTTTarget == "" {
		return c, errors.New("loadtest: MQTT clocks need the --target relay's MQTT listener (--mqtt-target HOST:PORT)")
	}
	if c.Dist == "" {
		c.Dist = DistUniform
	}
	if c.AckJitter > c.AckDelay {
		c.AckJitter = c.AckDelay
	}
	if c.Target == "" && c.RelayBin == "" {
		return c, errors.New("loadtest: need a relay binary to start (--relay-bin) or a running relay (--target)")
	}
	return c, nil
}

// defaultTo sets *d to v unless it is positive.
func defaultTo(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}
