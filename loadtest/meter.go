package loadtest

// This file measures a window of the run from outside: the relay's (each
// node's, in a cluster) and the generator's CPU and memory from /proc, the
// NATS server's, and the rest of the host's CPU.

import (
	"os"
	"sync"
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

// meter samples the relay's nodes (when their PIDs are known), the NATS
// server of a cluster, this process (the generator: vegeta and the swarm)
// and the host's CPU, so that a window of the run gets all of them.
type meter struct {
	nodes []*procSeries // one per node; nil when its PID is unknown
	nats  *Sampler      // nil without a cluster, or when not its own process
	self  *Sampler      // nil if /proc cannot be read
}

// procSeries samples one node over its processes: a restarted node is a
// new process, sampled from its start.
type procSeries struct {
	mu   sync.Mutex // guards incs
	incs []*Sampler // the node's processes, oldest first
}

func newSeries(sm *Sampler) *procSeries { return &procSeries{incs: []*Sampler{sm}} }

// add starts sampling the node's next process.
func (p *procSeries) add(sm *Sampler) {
	p.mu.Lock()
	p.incs = append(p.incs, sm)
	p.mu.Unlock()
}

func (p *procSeries) samplers() []*Sampler {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Sampler(nil), p.incs...)
}

// seriesMark is the start of a window of a procSeries.
type seriesMark struct {
	inc int // the process sampled at the mark
	m   Mark
	at  time.Time
}

func (p *procSeries) mark() seriesMark {
	incs := p.samplers()
	return seriesMark{inc: len(incs) - 1, m: incs[len(incs)-1].Mark(), at: time.Now()}
}

// since returns the node's figures from mk to now. Over one process they
// are that process's; over several the CPU is their CPU time over the
// window's length, the RSS the last one's, and the maxima the highest.
func (p *procSeries) since(mk seriesMark) ProcessStats {
	incs := p.samplers()[mk.inc:]
	if len(incs) == 1 {
		return incs[0].Since(mk.m)
	}
	var st ProcessStats
	var cpu float64 // core-seconds
	for i, sm := range incs {
		m := Mark{}
		if i == 0 {
			m = mk.m
		}
		s := sm.Since(m)
		cpu += s.CPUPercent / 100 * s.wall.Seconds()
		st.CPUMaxPct = max(st.CPUMaxPct, s.CPUMaxPct)
		st.RSSMaxMB = max(st.RSSMaxMB, s.RSSMaxMB)
		st.RSSMB, st.PID = s.RSSMB, s.PID
		st.Samples += s.Samples
	}
	st.wall = time.Since(mk.at)
	if w := st.wall.Seconds(); w > 0 {
		st.CPUPercent = cpu / w * 100
	}
	return st
}

func (p *procSeries) stop() {
	for _, sm := range p.samplers() {
		sm.Stop()
	}
}

// meterMark is the start of a window.
type meterMark struct {
	nodes []seriesMark
	nats  Mark
	self  Mark
	host  hostTicks
}

// reading is one window's figures.
type reading struct {
	// relay is the relay's; in a cluster the nodes' together (sums; the
	// maxima are sums of each node's own, an upper bound).
	relay ProcessStats
	nodes []ProcessStats // per node, in a cluster
	nats  ProcessStats
	self  ProcessStats
	// other is the CPU the rest of the host used (100 = one core), -1
	// when unknown.
	other float64
}

// meter samples the relay's processes (pids, one per node; 0 unknown) and
// the NATS server's (0: none).
func (r *runner) meter(pids []int, natsPID int, s *Summary) meter {
	var m meter
	for _, pid := range pids {
		if pid == 0 {
			s.Warnings = append(s.Warnings, "relay PID unknown: no CPU or memory figures (pass --target-pid)")
			m.nodes = append(m.nodes, nil)
		} else if sm, err := StartSampler(pid, sampleEvery); err != nil {
			s.Warnings = append(s.Warnings, "relay not sampled: "+err.Error())
			m.nodes = append(m.nodes, nil)
		} else {
			m.nodes = append(m.nodes, newSeries(sm))
		}
	}
	if natsPID != 0 {
		if sm, err := StartSampler(natsPID, sampleEvery); err == nil {
			m.nats = sm
		} else {
			s.Warnings = append(s.Warnings, "NATS server not sampled: "+err.Error())
		}
	}
	if sm, err := StartSampler(os.Getpid(), sampleEvery); err == nil {
		m.self = sm
	}
	return m
}

// sampled reports whether every node is sampled.
func (m meter) sampled() bool {
	for _, n := range m.nodes {
		if n == nil {
			return false
		}
	}
	return len(m.nodes) > 0
}

func (m meter) mark() meterMark {
	var mk meterMark
	for _, n := range m.nodes {
		var sm seriesMark
		if n != nil {
			sm = n.mark()
		}
		mk.nodes = append(mk.nodes, sm)
	}
	if m.nats != nil {
		mk.nats = m.nats.Mark()
	}
	if m.self != nil {
		mk.self = m.self.Mark()
	}
	mk.host = readHostTicks()
	return mk
}

func (m meter) since(mk meterMark) reading {
	var rd reading
	for i, n := range m.nodes {
		var st ProcessStats
		if n != nil {
			st = n.since(mk.nodes[i])
		}
		rd.nodes = append(rd.nodes, st)
	}
	if len(rd.nodes) == 1 {
		rd.relay = rd.nodes[0]
	} else {
		for _, st := range rd.nodes {
			rd.relay.CPUPercent += st.CPUPercent
			rd.relay.CPUMaxPct += st.CPUMaxPct
			rd.relay.RSSMB += st.RSSMB
			rd.relay.RSSMaxMB += st.RSSMaxMB
			rd.relay.Samples += st.Samples
		}
	}
	if m.nats != nil {
		rd.nats = m.nats.Since(mk.nats)
	}
	if m.self != nil {
		rd.self = m.self.Since(mk.self)
	}
	rd.other = -1
	if busy, err := mk.host.busyPercent(readHostTicks()); err == nil && m.self != nil && m.sampled() {
		rd.other = max(busy-rd.relay.CPUPercent-rd.nats.CPUPercent-rd.self.CPUPercent, 0)
	}
	return rd
}

func (m meter) stop() {
	for _, n := range m.nodes {
		if n != nil {
			n.stop()
		}
	}
	if m.nats != nil {
		m.nats.Stop()
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
	if c := s.Cluster; c != nil {
		for i := range c.Nodes {
			if i < len(rd.nodes) {
				c.Nodes[i].Process = rd.nodes[i]
			}
		}
		c.NATS = rd.nats
	}
}
