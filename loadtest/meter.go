package loadtest

// This file measures a window of the run from outside: the relay's and the
// generator's CPU and memory from /proc, and the rest of the host's CPU.

import (
	"os"
	"time"
)

const (
	// sampleEvery is the /proc sampling interval (see DefaultSampleEvery
	// for the resolution).
	sampleEvery = 250 * time.Millisecond
	// otherCPUWarn: other processes above this share of a core (percent)
	// during the attack earn a warning.
	otherCPUWarn = 25
)

// meter samples the relay (when its PID is known), this process (the
// generator: vegeta and the swarm) and the host's CPU, so that a window
// of the run gets all three.
type meter struct {
	relay *Sampler // nil when the relay's PID is unknown
	self  *Sampler // nil if /proc cannot be read
}

// meterMark is the start of a window.
type meterMark struct {
	relay, self Mark
	host        hostTicks
}

// reading is one window's figures.
type reading struct {
	relay, self ProcessStats
	// other is the CPU the rest of the host used (100 = one core), -1
	// when unknown.
	other float64
}

func (r *runner) meter(pid int, s *Summary) meter {
	var m meter
	if pid == 0 {
		s.Warnings = append(s.Warnings, "relay PID unknown: no CPU or memory figures (pass --target-pid)")
	} else if sm, err := StartSampler(pid, sampleEvery); err != nil {
		s.Warnings = append(s.Warnings, "relay not sampled: "+err.Error())
	} else {
		m.relay = sm
	}
	if sm, err := StartSampler(os.Getpid(), sampleEvery); err == nil {
		m.self = sm
	}
	return m
}

func (m meter) mark() meterMark {
	var mk meterMark
	if m.relay != nil {
		mk.relay = m.relay.Mark()
	}
	if m.self != nil {
		mk.self = m.self.Mark()
	}
	mk.host = readHostTicks()
	return mk
}

func (m meter) since(mk meterMark) reading {
	var rd reading
	if m.relay != nil {
		rd.relay = m.relay.Since(mk.relay)
	}
	if m.self != nil {
		rd.self = m.self.Since(mk.self)
	}
	rd.other = -1
	if busy, err := mk.host.busyPercent(readHostTicks()); err == nil && m.self != nil && (m.relay != nil) {
		rd.other = max(busy-rd.relay.CPUPercent-rd.self.CPUPercent, 0)
	}
	return rd
}

func (m meter) stop() {
	if m.relay != nil {
		m.relay.Stop()
	}
	if m.self != nil {
		m.self.Stop()
	}
}

// record puts a window's figures into the Summary.
func (rd reading) record(s *Summary) {
	s.Relay, s.Generator = rd.relay, rd.self
	s.RelayCPUPercent, s.RelayRSSMB = rd.relay.CPUPercent, rd.relay.RSSMB
	s.OtherCPUPercent = rd.other
}
