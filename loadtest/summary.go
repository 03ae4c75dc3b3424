package loadtest

// Summary is everything one run measured; OUT/summary.json is this struct.
// Every figure is measured in the run that wrote it, never estimated.
type Summary struct {
	Scenario  string  `json:"scenario"`
	Devices   int     `json:"devices"`    // devices the swarm was asked for
	Connected int     `json:"connected"`  // devices connected when the attack started
	Transport string  `json:"transport"`  // quic, webtransport or mixed
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

	Relay ProcessStats `json:"relay"` // sampled from /proc during the attack
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

	Connect *ConnectStats `json:"connect,omitempty"` // storm, idle (and every scenario's swarm start)
	Churn   *ChurnStats   `json:"churn,omitempty"`   // churn
	Memory  *MemoryStats  `json:"memory,omitempty"`  // idle

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
	Goroutines      int     `json:"relay_goroutines,omitempty"` // from the admin listener, if reachable
	// ByTransport: a mixed swarm's idle run also measures QUIC-only and
	// WebTransport-only swarms, each on a fresh relay.
	ByTransport []TransportMemory `json:"by_transport,omitempty"`
}

// TransportMemory is one single-transport idle measurement.
type TransportMemory struct {
	Transport    string  `json:"transport"` // quic or webtransport
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
	RotationsSkipped uint64  `json:"rotations_skipped"` // too many already in flight
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
