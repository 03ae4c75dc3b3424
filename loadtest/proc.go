package loadtest

// This file samples another process's CPU time and resident memory from
// /proc (Linux only): the relay runs as its own process, so its cost is
// measured from outside, next to the latencies the generator sees.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"
)

// ErrNoProcess is returned (wrapped, with the PID) when /proc has no live
// process for a PID: it never existed, exited, or is a zombie.
var ErrNoProcess = errors.New("loadtest: no such process")

// DefaultSampleEvery is StartSampler's interval when given 0. With the
// kernel's 100 Hz CPU accounting, one tick is 1% of a core over a second,
// so intervals much below 250 ms make CPUMaxPct coarse.
const DefaultSampleEvery = 500 * time.Millisecond

// Sampler samples one process's CPU time and RSS at a fixed interval until
// Stop. Mark and Since give the figures for part of the sampling (one step
// of a capacity ramp). All methods are safe for concurrent use.
type Sampler struct {
	pid   int           // static after construction
	every time.Duration // static after construction
	stop  chan struct{} // closed by Stop
	done  chan struct{} // closed when the sampling goroutine returns

	mu      sync.Mutex // guards the fields below
	samples []procSample
	err     error // first read error; sampling stops after it
	stopped bool
}

// procSample is one reading of /proc/PID.
type procSample struct {
	at    time.Time // monotonic
	ticks uint64    // utime + stime, in clock ticks
	rssKB uint64    // VmRSS
}

// Mark is a point in a Sampler's sampling; Since(m) covers m to now.
type Mark struct{ i int }

// StartSampler reads /proc/PID/stat and /proc/PID/status now (an error if
// the process is not there) and then every interval until Stop. every <= 0
// means DefaultSampleEvery.
func StartSampler(pid int, every time.Duration) (*Sampler, error) {
	if every <= 0 {
		every = DefaultSampleEvery
	}
	first, err := readProc(pid)
	if err != nil {
		return nil, err
	}
	s := &Sampler{
		pid:     pid,
		every:   every,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		samples: []procSample{first},
	}
	go s.loop()
	return s, nil
}

func (s *Sampler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if !s.sample() {
				return
			}
		}
	}
}

// sample appends a reading and reports whether sampling should go on. A
// process that has gone keeps the samples taken so far.
func (s *Sampler) sample() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.stopped {
		return false
	}
	p, err := readProc(s.pid)
	if err != nil {
		s.err = err
		return false
	}
	s.samples = append(s.samples, p)
	return true
}

// Stop takes a last sample, ends the sampling and returns the figures over
// all of it. If the process went away meanwhile, the figures cover the
// samples taken while it was there (Err says why it stopped). Calling Stop
// again returns the same figures.
func (s *Sampler) Stop() ProcessStats {
	s.sample()
	s.mu.Lock()
	first := !s.stopped
	s.stopped = true
	s.mu.Unlock()
	if first {
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats(0)
}

// Err is the read error that ended sampling early (the process exited), or
// nil.
func (s *Sampler) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Mark takes a sample and returns its place, for Since.
func (s *Sampler) Mark() Mark {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return Mark{i: len(s.samples) - 1}
}

// Since takes a sample (unless stopped) and returns the figures from m to
// now: the CPU over that stretch, the RSS at its end and its highest.
func (s *Sampler) Since(m Mark) ProcessStats {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats(m.i)
}

// stats summarises samples[from:]. Caller holds s.mu.
func (s *Sampler) stats(from int) ProcessStats {
	st := ProcessStats{PID: s.pid}
	if from < 0 || from >= len(s.samples) {
		return st
	}
	ss := s.samples[from:]
	st.Samples = len(ss)
	hz := float64(clockTicks())
	first, last := ss[0], ss[len(ss)-1]
	st.wall = last.at.Sub(first.at)
	if wall := st.wall.Seconds(); wall > 0 {
		st.CPUPercent = float64(last.ticks-first.ticks) / hz / wall * 100
	}
	// Intervals shorter than half the period (a Mark or Since right after a
	// tick) are merged into the next one: a single 10 ms tick in a 1 ms
	// interval would read as 1000%.
	anchor := first
	for _, p := range ss {
		st.RSSMaxMB = max(st.RSSMaxMB, kbToMB(p.rssKB))
		if d := p.at.Sub(anchor.at); d >= s.every/2 {
			st.CPUMaxPct = max(st.CPUMaxPct, float64(p.ticks-anchor.ticks)/hz/d.Seconds()*100)
			anchor = p
		}
	}
	// A stretch shorter than one interval still has its mean.
	st.CPUMaxPct = max(st.CPUMaxPct, st.CPUPercent)
	st.RSSMB = kbToMB(last.rssKB)
	return st
}

// RSS returns a process's resident set size (VmRSS) in MiB.
func RSS(pid int) (mb float64, err error) {
	kb, err := readRSS(pid)
	if err != nil {
		return 0, err
	}
	return kbToMB(kb), nil
}

func kbToMB(kb uint64) float64 { return float64(kb) / 1024 }

func readProc(pid int) (procSample, error) {
	at := time.Now()
	ticks, err := readTicks(pid)
	if err != nil {
		return procSample{}, err
	}
	rss, err := readRSS(pid)
	if err != nil {
		return procSample{}, err
	}
	return procSample{at: at, ticks: ticks, rssKB: rss}, nil
}

// readTicks returns utime+stime from /proc/PID/stat. The command name (the
// second field) is in parentheses and may itself hold spaces and ')', so
// the fields are counted from the last ')'.
func readTicks(pid int) (uint64, error) {
	b, err := readProcFile(pid, "stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadtest: /proc/%d/stat: no command field", pid)
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15).
	f := bytes.Fields(b[i+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("loadtest: /proc/%d/stat: %d fields", pid, len(f))
	}
	if string(f[0]) == "Z" || string(f[0]) == "X" {
		return 0, fmt.Errorf("%w: pid %d has exited", ErrNoProcess, pid)
	}
	u, err1 := strconv.ParseUint(string(f[utime]), 10, 64)
	s, err2 := strconv.ParseUint(string(f[stime]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("loadtest: /proc/%d/stat: %w", pid, err)
	}
	return u + s, nil
}

// readRSS returns VmRSS in kB from /proc/PID/status. A zombie has no VmRSS.
func readRSS(pid int) (uint64, error) {
	b, err := readProcFile(pid, "status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		v, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(v) // "1234 kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("loadtest: /proc/%d/status: VmRSS %q", pid, bytes.TrimSpace(v))
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("loadtest: /proc/%d/status: %w", pid, err)
		}
		return kb, nil
	}
	return 0, fmt.Errorf("%w: pid %d has no memory (exited)", ErrNoProcess, pid)
}

func readProcFile(pid int, name string) ([]byte, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("%w: pid %d", ErrNoProcess, pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w: pid %d: %w", ErrNoProcess, pid, err)
	case err != nil:
		// ESRCH: the process went between open and read.
		return nil, fmt.Errorf("loadtest: pid %d: %w", pid, err)
	}
	return b, nil
}

// clockTicks is sysconf(_SC_CLK_TCK), the unit of utime and stime: the
// kernel's USER_HZ. The C library reads it from the AT_CLKTCK entry of the
// auxiliary vector, and so do we (/proc/self/auxv), which needs neither cgo
// nor running getconf. It is 100 on every architecture Go runs Linux on;
// 100 is also the fallback when auxv cannot be read.
var clockTicks = sync.OnceValue(func() uint64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	word := int(unsafe.Sizeof(uintptr(0)))
	get := func(b []byte) uint64 {
		if word == 8 {
			return binary.NativeEndian.Uint64(b)
		}
		return uint64(binary.NativeEndian.Uint32(b))
	}
	for ; len(b) >= 2*word; b = b[2*word:] {
		if get(b) == atClkTck {
			if v := get(b[word:]); v > 0 {
				return v
			}
		}
	}
	return 100
})
