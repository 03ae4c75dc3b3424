package loadtest

import "time"

// Summary is everything one run measured; OUT/summary.json is this struct.
// Every figure is measured in the run that wrote it, never estimated, but
// for two that say so: the floor-mix row of Costs (two measured floors
// weighted) and Fleet's linear projections.
type Summary struct {
	Scenario  string  `json:"scenario"`
	Devices   int     `json:"devices"`    // devices the swarm was asked for
	Connected int     `json:"connected"`  // devices connected when the attack started
	Transport string  `json:"transport"`  // quic, webtransport, websocket or mixed
	Rate      float64 `json:"rate"`       // requested webhooks/s (constant scenarios)
	DurationS float64 `json:"duration_s"` // attack duration
	Target    string  `json:"target"`     // the relay's HOST:PORT
	// The swarm's shape: distribution of webhooks over devices (uniform,
	// zipf, hot) and the devices' artificial ack delay ± jitter.
	Dist        string  `json:"dist,omitempty"`
	AckDelayMS  float64 `json:"ack_delay_ms,omitempty"`
	AckJitterMS float64 `json:"ack_jitter_ms,omitempty"`

	// Command is the exact loadtest command line, quoted for a shell, so the
	// report says how to reproduce the run.
	Command string `json:"command,omitempty"`
	// RelayCommand is how the suite started the relay (its webhook rate
	// limits are off unless the command says otherwise); empty for --target.
	RelayCommand string `json:"relay_command,omitempty"`

	Requests     uint64            `json:"requests"`      // webhooks sent
	StatusCounts map[string]uint64 `json:"status_counts"` // by HTTP code; "0" for transport errors
	Throughput   float64           `json:"throughput"`    // 2xx answers per second

	// Exact accounting of 200-answered webhooks (each carries a unique id).
	Delivered  uint64 `json:"delivered"`  // arrived exactly once, at the right device
	Lost       uint64 `json:"lost"`       // 200 answered, never seen by a device
	Duplicated uint64 `json:"duplicated"` // seen more than once
	Misrouted  uint64 `json:"misrouted"`  // seen by a device other than its token's
	// Late counts messages devices saw whose webhook got no 200 (e.g. 504
	// after the device got it): not errors, but worth knowing.
	Late uint64 `json:"late"`

	Latency LatencyMS `json:"latency_ms"`
	// ByTransport splits the connect and webhook figures by the devices'
	// transport when they use several.
	ByTransport []TransportStats `json:"by_transport,omitempty"`

	// Relay is sampled from /proc during the attack; in a cluster it is the
	// nodes together (CPU and RSS summed; the maxima are the sums of each
	// node's own, an upper bound), Cluster.Nodes has each.
	Relay ProcessStats `json:"relay"`
	// Flat copies of Relay's figures, the names capacity tools look for.
	RelayCPUPercent float64 `json:"relay_cpu_percent"`
	RelayRSSMB      float64 `json:"relay_rss_mb"`
	// Generator is this loadtest process (vegeta and the device swarm) over
	// the same window: on one machine it shares the CPU with the relay.
	Generator ProcessStats `json:"generator"`
	// OtherCPUPercent is what the rest of the host used meanwhile (100 = one
	// core; -1 unknown): well above zero, other load disturbed the figures.
	OtherCPUPercent float64 `json:"other_cpu_percent"`

	// Baseline is the same attack against a bare fasthttp TLS handler in the
	// same run: the load generator's own ceiling on this machine.
	Baseline *BaselineStats `json:"baseline,omitempty"`

	// Costs compares the relay's cost per unit of work (CPU per webhook,
	// RSS per idle device, handshakes per second) with its floors' (bare
	// servers doing only the device leg) and the baseline's: fanin, storm,
	// capacity and idle.
	Costs *CostStats `json:"costs,omitempty"`
	// Pin says where the processes ran with --pin; nil: not pinned.
	Pin *PinStats `json:"pin,omitempty"`

	Connect *ConnectStats `json:"connect,omitempty"` // storm, idle (and every scenario's swarm start)
	Churn   *ChurnStats   `json:"churn,omitempty"`   // churn, soak
	Memory  *MemoryStats  `json:"memory,omitempty"`  // idle
	Cluster *ClusterStats `json:"cluster,omitempty"` // cluster, soak
	Soak    *SoakStats    `json:"soak,omitempty"`    // soak
	Fleet   *FleetStats   `json:"fleet,omitempty"`   // fleet
	// MQTTStorm is the mqttstorm scenario: MQTT clocks logging in at
	// once to the relay and to mosquitto.
	MQTTStorm *MQTTStormStats `json:"mqtt_storm,omitempty"`

	// NonOK counts the answers other than 2xx by status and the relay's
	// error code ("503 draining"), and transport errors by kind ("0
	// timeout"): cluster and soak.
	NonOK map[string]uint64 `json:"non_ok,omitempty"`

	// Capacity: one entry per rate step, relay and baseline.
	Steps            []Step  `json:"steps,omitempty"`
	BaselineSteps    []Step  `json:"baseline_steps,omitempty"`
	MaxSustainedRate float64 `json:"max_sustained_rate,omitempty"` // highest step that held the SLO with no errors
	SLOP99MS         float64 `json:"slo_p99_ms,omitempty"`
	// BaselineMaxSustainedRate is the baseline ramp's highest held step; the
	// baseline ramp stops at the relay's last step, so this is at most that.
	BaselineMaxSustainedRate float64 `json:"baseline_max_sustained_rate,omitempty"`

	// Pass is false when accounting found lost, duplicated or misrouted
	// messages, or a scenario's own check failed; Failures says why.
	Pass     bool     `json:"pass"`
	Failures []string `json:"failures,omitempty"`
	// Warnings do not fail the run but qualify its figures (the generator
	// fell behind, the baseline failed too, backpressure not reached).
	Warnings []string `json:"warnings,omitempty"`
}

// LatencyMS are webhook round-trip percentiles as the caller saw them.
type LatencyMS struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ProcessStats are samples of a process's CPU and memory.
type ProcessStats struct {
	PID        int     `json:"pid,omitempty"`
	CPUPercent float64 `json:"cpu_percent"` // mean over the attack; 100 = one core
	CPUMaxPct  float64 `json:"cpu_max_percent"`
	RSSMB      float64 `json:"rss_mb"`     // at the end of the attack
	RSSMaxMB   float64 `json:"rss_max_mb"` // highest sample
	Samples    int     `json:"samples"`

	wall time.Duration // the stretch the CPU mean covers
}

// BaselineStats is the bare handler's result for the same attack.
type BaselineStats struct {
	Requests   uint64    `json:"requests"`
	Throughput float64   `json:"throughput"`
	Latency    LatencyMS `json:"latency_ms"`
	// Relay minus baseline, the relay's own cost.
	AddedP50MS float64 `json:"added_p50_ms"`
	AddedP99MS float64 `json:"added_p99_ms"`
	// ThroughputRatio is relay throughput / baseline throughput.
	ThroughputRatio float64 `json:"throughput_ratio"`
	// Process is the baseline server's own CPU and memory, when it ran as
	// its own process.
	Process *ProcessStats `json:"process,omitempty"`
}

// ConnectStats describe how the swarm connected.
type ConnectStats struct {
	Devices       int     `json:"devices"`
	Failed        int     `json:"failed"`
	AllConnectedS float64 `json:"all_connected_s"` // from the first dial to the last WELCOME
	HandshakesPS  float64 `json:"handshakes_per_s"`
	P50MS         float64 `json:"connect_p50_ms"` // one device's dial + login
	P99MS         float64 `json:"connect_p99_ms"`
	// DialErrors counts failed dials (refused, timed out), each retried with
	// backoff; a device's first login may have needed several.
	DialErrors uint64 `json:"dial_errors,omitempty"`
}

// MemoryStats is the relay's memory cost of idle devices.
type MemoryStats struct {
	RSSBeforeMB     float64 `json:"rss_before_mb"`
	RSSAfterMB      float64 `json:"rss_after_mb"`
	PerDeviceKiB    float64 `json:"per_device_kib"`
	QUICDevices     int     `json:"quic_devices"`
	WebTransDevices int     `json:"webtransport_devices"`
	WebSocketDevs   int     `json:"websocket_devices,omitempty"`
	MQTTDevices     int     `json:"mqtt_devices,omitempty"`
	Goroutines      int     `json:"relay_goroutines,omitempty"` // from the admin listener, if reachable
	// ByTransport: an idle run on several transports also measures a
	// swarm on each alone, each on a fresh relay.
	ByTransport []TransportMemory `json:"by_transport,omitempty"`
	// Mosquitto: with MQTT clocks, mosquitto's memory with as many idle
	// clocks as the relay's MQTT measurement had.
	Mosquitto *MosquittoMemory `json:"mosquitto,omitempty"`
}

// MosquittoMemory is mosquitto's memory with idle MQTT clocks: the same
// client as the relay's (mqttclient.go), as many clocks as the relay had
// on MQTT alone, in the same run, settled as long.
type MosquittoMemory struct {
	Version     string  `json:"version"` // "mosquitto version 2.0.11"
	PID         int     `json:"pid"`
	Connections int     `json:"connections"` // logged in and subscribed
	RSSBeforeMB float64 `json:"rss_before_mb"`
	RSSAfterMB  float64 `json:"rss_after_mb"`
	PerConnKiB  float64 `json:"per_connection_kib"`
	// RelayPerDeviceKiB is the relay's RSS per idle MQTT clock in the
	// same run; Ratio is relay / mosquitto (0: either unknown).
	RelayPerDeviceKiB float64 `json:"relay_per_device_kib"`
	Ratio             float64 `json:"ratio"`
}

// MQTTStormStats are the mqttstorm scenario's figures: Clocks stock MQTT
// clocks logging in at once, at most InFlight at a time, to a fresh relay
// and then to a fresh mosquitto.
type MQTTStormStats struct {
	Clocks    int           `json:"clocks"`
	InFlight  int           `json:"in_flight"`
	Relay     MQTTStormSide `json:"relay"`
	Mosquitto MQTTStormSide `json:"mosquitto"`
	// RelayLimits says how the relay's MQTT connect limits were set for
	// the storm.
	RelayLimits string `json:"relay_limits"`
}

// MQTTStormSide is one broker's storm, measured at the clocks.
type MQTTStormSide struct {
	Server    string `json:"server"` // relay, or mosquitto's version
	PID       int    `json:"pid,omitempty"`
	Connected int    `json:"connected"` // logged in and subscribed
	Failed    int    `json:"failed"`
	// DialErrors are failed logins (refused, closed, timed out), each
	// retried with backoff.
	DialErrors uint64 `json:"dial_errors,omitempty"`
	// AllLoggedInS runs from the first TCP connect to the last clock's
	// last SUBACK; ConnectsPS is Connected over it.
	AllLoggedInS float64 `json:"all_logged_in_s"`
	ConnectsPS   float64 `json:"connects_per_s"`
	// CONNACK latency: from a clock's TCP connect to its CONNACK, its
	// first login.
	ConnackP50MS float64 `json:"connack_p50_ms"`
	ConnackP99MS float64 `json:"connack_p99_ms"`
	ConnackMaxMS float64 `json:"connack_max_ms"`
	// Logged in and subscribed: to the last of AWTRIX 3's 24 SUBACKs.
	ReadyP50MS float64 `json:"ready_p50_ms"`
	ReadyP99MS float64 `json:"ready_p99_ms"`
	// The broker's CPU time over the storm and its RSS after (0: its PID
	// unknown).
	CPUS  float64 `json:"cpu_s"`
	RSSMB float64 `json:"rss_mb"`
}

// TransportMemory is one single-transport idle measurement.
type TransportMemory struct {
	Transport    string  `json:"transport"` // quic, webtransport, websocket or mqtt
	Devices      int     `json:"devices"`
	RSSBeforeMB  float64 `json:"rss_before_mb"`
	RSSAfterMB   float64 `json:"rss_after_mb"`
	PerDeviceKiB float64 `json:"per_device_kib"`
}

// ChurnStats are what the churn scenario did to the swarm under traffic.
type ChurnStats struct {
	ReconnectPerS    float64 `json:"reconnect_per_s"` // fraction of devices per second asked to reconnect
	RotatePerS       float64 `json:"rotate_per_s"`    // fraction of devices per second asked to rotate
	Reconnects       uint64  `json:"reconnects"`      // sessions hung up on purpose
	Reconnected      uint64  `json:"reconnected"`     // sessions re-established (any cause)
	Rotations        uint64  `json:"rotations"`       // tokens rotated over a live session
	RotationsFailed  uint64  `json:"rotations_failed"`
	RotationsSkipped uint64  `json:"rotations_skipped"` // too many already in flight, or an MQTT clock (which cannot rotate)
}

// Step is one rate of a capacity ramp.
type Step struct {
	Rate        float64   `json:"rate"`
	Requests    uint64    `json:"requests"`
	Throughput  float64   `json:"throughput"`
	ErrorRate   float64   `json:"error_rate"` // non-2xx / requests
	Latency     LatencyMS `json:"latency_ms"`
	RelayCPUPct float64   `json:"relay_cpu_percent,omitempty"`
	RelayRSSMB  float64   `json:"relay_rss_mb,omitempty"`
	Held        bool      `json:"held"` // p99 under the SLO and no errors
}

// ClusterStats are the cluster and soak scenarios' own figures: the nodes,
// the NATS server, and where deliveries crossed nodes.
type ClusterStats struct {
	Nodes   []NodeStats  `json:"nodes"`
	NATSURL string       `json:"nats_url"`
	NATS    ProcessStats `json:"nats"` // the NATS server's process (zero when it ran in this one)

	// Deliveries (webhooks answered 2xx) by where the device's session
	// was when the webhook was sent: on the node the webhook went to
	// (local), on another (cross-node), or between sessions (unknown).
	Local     uint64 `json:"local"`
	CrossNode uint64 `json:"cross_node"`
	Unknown   uint64 `json:"unknown,omitempty"`
	// CrossNodeShare is CrossNode / (Local + CrossNode + Unknown).
	CrossNodeShare   float64   `json:"cross_node_share"`
	LocalLatency     LatencyMS `json:"local_latency_ms"`
	CrossNodeLatency LatencyMS `json:"cross_node_latency_ms"`

	// Moves are GOAWAYs the devices answered by logging in on another
	// node before leaving (make-before-break); MovesFailed, those whose
	// login there failed (the device then reconnected with backoff).
	Moves       uint64 `json:"moves"`
	MovesFailed uint64 `json:"moves_failed"`
}

// NodeStats is one relay node of a cluster.
type NodeStats struct {
	Node  int    `json:"node"`
	Addr  string `json:"addr"`
	Admin string `json:"admin"`
	PIDs  []int  `json:"pids"` // one per process: a restart adds one
	// Webhooks is how many the generator sent to this node; Devices, the
	// sessions on it at the end of the attack.
	Webhooks uint64       `json:"webhooks"`
	Devices  int          `json:"devices"`
	Process  ProcessStats `json:"process"` // over the attack, every process of the node
}

// SoakStats are the soak scenario's rolling restart.
type SoakStats struct {
	RestartEveryS float64        `json:"restart_every_s"`
	Restarts      []RestartStats `json:"restarts"`
	// Outside the restarts' windows: how long, and the answers other than
	// 2xx there (churn's own, for comparison).
	OutsideS     float64 `json:"outside_s"`
	OutsideNonOK uint64  `json:"outside_non_ok"`
	// OutsideNonOKChurn of them went to a device churn hung up or rotated
	// (FailureSample.Churn).
	OutsideNonOKChurn uint64 `json:"outside_non_ok_churn"`
	// OutsideSamples are the first of the others, which churn does not
	// explain.
	OutsideSamples []FailureSample `json:"outside_samples,omitempty"`
	// Timeline is the attack second by second.
	Timeline []SecondStats `json:"timeline"`
}

// RestartStats is one node's restart: taken out of the generator's
// rotation, SIGTERM (its devices move away), exit, started again on the
// same ports, /readyz, back in rotation.
type RestartStats struct {
	Node int       `json:"node"`
	At   time.Time `json:"at"`   // taken out of rotation
	AtS  float64   `json:"at_s"` // the same, seconds into the attack
	// SettleS: out of rotation until every webhook sent to it was
	// answered; DrainS: SIGTERM to exit; EmptyS: SIGTERM until the swarm
	// had no session left on it; BackS: exit to ready again; OutS: the
	// whole window, out of rotation to back in.
	SettleS float64 `json:"settle_s"`
	DrainS  float64 `json:"drain_s"`
	EmptyS  float64 `json:"empty_s"`
	BackS   float64 `json:"back_s"`
	OutS    float64 `json:"out_s"`
	// PID is the node's new process.
	PID int `json:"pid,omitempty"`
	// Devices had sessions on the node at SIGTERM; Moved and MovesFailed
	// count the swarm's moves during the window.
	Devices     int    `json:"devices"`
	Moved       uint64 `json:"moved"`
	MovesFailed uint64 `json:"moves_failed"`
	// Requests were sent (to any node) during the window; NonOK of them
	// were not answered 2xx, by status and code.
	Requests    uint64            `json:"requests"`
	NonOK       uint64            `json:"non_ok"`
	NonOKByCode map[string]uint64 `json:"non_ok_by_code,omitempty"`
	// NonOKChurn of them went to a device churn hung up or rotated
	// meanwhile (FailureSample.Churn): churn's, not the restart's.
	NonOKChurn uint64 `json:"non_ok_churn"`
	// Samples are the first of those answers, in the order sent.
	Samples []FailureSample `json:"samples,omitempty"`
	// Error says why the restart did not complete; the run fails.
	Error string `json:"error,omitempty"`
}

// FailureSample is one webhook of a restart's window not answered 2xx.
type FailureSample struct {
	// AfterTermS: sent this long after the node's SIGTERM (negative:
	// before it).
	AfterTermS float64 `json:"after_sigterm_s"`
	Answer     string  `json:"answer"` // status and code
	LatencyMS  float64 `json:"latency_ms"`
	// The node the webhook went to, its device, and the node of that
	// device's session when it was sent (-1: between sessions).
	WebhookNode int `json:"webhook_node"`
	Device      int `json:"device"`
	DeviceNode  int `json:"device_node"`
	// Events are the device's, from 2 s before the webhook was sent to
	// its answer, in seconds from when it was sent; Churn says whether
	// churn hung it up or rotated its token in that time.
	Events []string `json:"events,omitempty"`
	Churn  bool     `json:"churn"`
}

// SecondStats is one second of an attack.
type SecondStats struct {
	S        int     `json:"s"` // seconds into the attack
	Requests uint64  `json:"requests"`
	NonOK    uint64  `json:"non_ok"`
	P50MS    float64 `json:"p50_ms"` // of the 2xx answers
	P99MS    float64 `json:"p99_ms"`
}

// CostStats compares servers doing the same work in the same run: the
// relay, the floors (bare quic-go, webtransport-go or WebSocket servers with a
// fasthttp frontend that do only the device leg) and the baseline (a bare
// fasthttp TLS handler, no devices).
type CostStats struct {
	// Servers are the relay (and, in a mixed idle run, the relay with
	// each transport alone), the floors that ran and the baseline, in that
	// order. Each had a swarm of the same size, and the same attack.
	Servers []ServerCost `json:"servers"`
	// WebTransportShare and WebSocketShare are the relay's swarm's
	// (Config.WebTransportShare, Config.WebSocketShare).
	WebTransportShare float64 `json:"webtransport_share"`
	WebSocketShare    float64 `json:"websocket_share,omitempty"`
	// Floor is the relay's matching floor: the floor of its devices'
	// transport or, for a swarm on several, "floor-mix", their floors
	// weighted by their shares (derived, not measured).
	Floor *ServerCost `json:"floor,omitempty"`
	// Overhead is relay minus Floor: what the relay's own machinery costs.
	Overhead *CostDelta `json:"relay_overhead,omitempty"`
}

// ServerCost is one server's cost per unit of work.
type ServerCost struct {
	Server string `json:"server"` // relay, relay-quic, relay-webtransport, relay-websocket, floor-quic, floor-webtransport, floor-websocket, floor-mix, baseline
	PID    int    `json:"pid,omitempty"`
	// Sampled says the process's CPU and memory were read from /proc
	// (its PID was known); without it the CPU and RSS figures are unknown.
	Sampled bool `json:"sampled"`
	// Derived marks a row computed from others (floor-mix), not measured.
	Derived bool `json:"derived,omitempty"`
	// Transport is the devices' (quic, webtransport, websocket or mixed); empty for
	// the baseline, which has none.
	Transport string `json:"transport,omitempty"`
	Devices   int    `json:"devices"`  // connected
	Webhooks  uint64 `json:"webhooks"` // answered 2xx in the measured attack
	// CPUS is the process's CPU time over the attack (opening the
	// generator's connection pool included, the same for every server),
	// in seconds; CPUPerWebhookUS is CPUS per webhook answered, in µs (0:
	// no attack).
	CPUS            float64 `json:"cpu_s"`
	CPUPerWebhookUS float64 `json:"cpu_per_webhook_us"`
	// RSS before the swarm connected (after a settle) and with it
	// connected; RSSPerDeviceKiB is the difference per connected device.
	RSSBeforeMB     float64 `json:"rss_before_mb"`
	RSSAfterMB      float64 `json:"rss_after_mb"`
	RSSPerDeviceKiB float64 `json:"rss_per_device_kib"`
	// HandshakesPS is devices logged in per second while the swarm
	// connected (ConnectStats.HandshakesPS).
	HandshakesPS float64   `json:"handshakes_per_s"`
	Latency      LatencyMS `json:"latency_ms"`
	// The floors' own accounting: a floor that loses a message is broken,
	// and the run fails.
	Lost       uint64 `json:"lost,omitempty"`
	Duplicated uint64 `json:"duplicated,omitempty"`
	Misrouted  uint64 `json:"misrouted,omitempty"`
}

// CostDelta is relay minus floor; a figure one side lacks is 0.
type CostDelta struct {
	CPUPerWebhookUS float64 `json:"cpu_per_webhook_us"`
	CPURatio        float64 `json:"cpu_ratio"` // relay / floor
	RSSPerDeviceKiB float64 `json:"rss_per_device_kib"`
	RSSRatio        float64 `json:"rss_ratio"`
	// HandshakesPS is relay minus floor: negative when the relay logs
	// devices in more slowly.
	HandshakesPS    float64 `json:"handshakes_per_s"`
	HandshakesRatio float64 `json:"handshakes_ratio"`
	P50MS           float64 `json:"p50_ms"`
	P99MS           float64 `json:"p99_ms"`
}

// FleetStats is the fleet scenario: a realistic fleet, mostly idle with
// keep-alives and a low webhook rate, and the relay's memory and CPU per
// 1,000 devices.
type FleetStats struct {
	Devices       int     `json:"devices"`         // connected
	ConnectRate   float64 `json:"connect_rate"`    // devices/s while connecting
	WebhookRate   float64 `json:"webhook_rate"`    // webhooks/s over the whole fleet
	WebhookEveryS float64 `json:"webhook_every_s"` // per device: one webhook every this many seconds
	KeepAliveS    float64 `json:"keep_alive_s"`    // the devices' QUIC keep-alive period
	IdleS         float64 `json:"idle_s"`          // the window with keep-alives only
	SteadyS       float64 `json:"steady_s"`        // the window with keep-alives and webhooks

	// The relay's RSS: with no devices, with the fleet connected (after
	// the idle window), at the end; per 1,000 devices is with minus
	// before, over devices/1000.
	RSSBeforeMB       float64 `json:"rss_before_mb"`
	RSSWithDevicesMB  float64 `json:"rss_with_devices_mb"`
	RSSEndMB          float64 `json:"rss_end_mb"`
	RSSPer1000MB      float64 `json:"rss_per_1000_devices_mb"`
	GeneratorRSSMB    float64 `json:"generator_rss_mb"` // this process, with the fleet connected
	BaseCPUPercent    float64 `json:"base_cpu_percent"` // the relay with no devices (100 = one core)
	IdleCPUPercent    float64 `json:"idle_cpu_percent"` // keep-alives only
	SteadyCPUPercent  float64 `json:"steady_cpu_percent"`
	CPUPer1000Percent float64 `json:"cpu_per_1000_devices_percent"` // steady minus base, over devices/1000
	// KeepAliveCPUPer1000Percent is the idle window's minus the base, over
	// devices/1000. Differences below 0 (noise) count as 0.
	KeepAliveCPUPer1000Percent float64 `json:"keepalive_cpu_per_1000_devices_percent"`
	// CPUPerWebhookUS is the steady window's CPU above the idle window's
	// rate, per webhook answered.
	CPUPerWebhookUS float64 `json:"cpu_per_webhook_us"`
	Webhooks        uint64  `json:"webhooks"` // answered 2xx

	// Projections are linear extrapolations, not measurements: RSS before
	// plus RSS per device times N; CPU the base plus the keep-alives' per
	// device times N plus N's webhook rate times CPU per webhook.
	Projections []FleetProjection `json:"projections"`
}

// FleetProjection is the fleet's figures extrapolated linearly to Devices
// on one node. Not measured.
type FleetProjection struct {
	Devices    int     `json:"devices"`
	WebhooksPS float64 `json:"webhooks_per_s"`
	RSSMB      float64 `json:"rss_mb"`
	CPUPercent float64 `json:"cpu_percent"` // 100 = one core
}

// PinStats is how a pinned run placed its processes (Summary.Pin).
type PinStats struct {
	ServerCPU    int `json:"server_cpu"`    // the relay, floors, baseline and NATS
	GeneratorCPU int `json:"generator_cpu"` // this process: vegeta and the swarm
	// Processes are the pinned processes with the CPUs the kernel allows
	// their threads, read back right after pinning.
	Processes []PinnedProcess `json:"processes"`
}

// PinnedProcess is one pinned process.
type PinnedProcess struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	CPUs []int  `json:"cpus"` // the union of its threads' allowed CPUs
}
