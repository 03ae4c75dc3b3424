package loadtest

// This file pins the servers under test and the load generator to CPUs of
// their own (Config.Pin, --pin): on a small machine they otherwise share
// every core, and the generator's and the devices' work shows up in the
// server's latency and CPU figures, more or less depending on how the
// scheduler placed them.

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
)

// pinPasses bounds how often a process's threads are walked until all
// have the mask: a thread started meanwhile inherits the mask of the
// thread that made it, which may not have been pinned yet.
const pinPasses = 10

// pinning is a run's CPU pinning: the servers on one CPU, this process on
// another. A nil *pinning pins nothing.
type pinning struct {
	server, generator int   // static
	restore           []int // static: this process's CPUs before the run

	mu    sync.Mutex // guards stats
	stats PinStats
}

// pickCPUs chooses the servers' and the generator's CPUs among those this
// process may use (sorted): the first two, CPU 0 and 1 on most machines.
func pickCPUs(allowed []int) (server, generator int, err error) {
	if len(allowed) < 2 {
		return 0, 0, fmt.Errorf("loadtest: --pin needs at least 2 CPUs, one for the servers and one for the load generator, "+
			"but this process may run on %d (%v); run without --pin, or on a machine (or cpuset) with 2 CPUs or more", len(allowed), allowed)
	}
	return allowed[0], allowed[1], nil
}

// startPinning pins this process to its generator CPU for the run; stop
// puts its threads back on the CPUs they had.
func startPinning() (*pinning, error) {
	allowed, err := processCPUs(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("loadtest: --pin: %w", err)
	}
	server, gen, err := pickCPUs(allowed)
	if err != nil {
		return nil, err
	}
	p := &pinning{server: server, generator: gen, restore: allowed,
		stats: PinStats{ServerCPU: server, GeneratorCPU: gen}}
	if err := p.pin("loadtest (generator and devices)", os.Getpid(), gen); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// child returns the hook that pins a server process named name to the
// servers' CPU as soon as it runs; nil when p is.
func (p *pinning) child(name string) func(pid int) error {
	if p == nil {
		return nil
	}
	return func(pid int) error { return p.pin(name, pid, p.server) }
}

// pin pins every thread of pid to cpu and records what the kernel then
// reports.
func (p *pinning) pin(name string, pid, cpu int) error {
	if err := pinProcess(pid, []int{cpu}); err != nil {
		return fmt.Errorf("loadtest: pin %s (pid %d) to CPU %d: %w", name, pid, cpu, err)
	}
	got, err := processCPUs(pid)
	if err != nil {
		return fmt.Errorf("loadtest: pin %s (pid %d): %w", name, pid, err)
	}
	if !slices.Equal(got, []int{cpu}) {
		return fmt.Errorf("loadtest: pin %s (pid %d) to CPU %d: its threads may run on %v", name, pid, cpu, got)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Processes = append(p.stats.Processes, PinnedProcess{Name: name, PID: pid, CPUs: got})
	return nil
}

// summary returns the placement so far; nil when p is.
func (p *pinning) summary() *PinStats {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats
	st.Processes = slices.Clone(st.Processes)
	return &st
}

// stop puts this process's threads back on the CPUs they had before.
func (p *pinning) stop() error {
	if p == nil {
		return nil
	}
	if err := pinProcess(os.Getpid(), p.restore); err != nil {
		return fmt.Errorf("loadtest: --pin: restore this process's CPUs %v: %w", p.restore, err)
	}
	return nil
}

// describe is the placement in words, for the report.
func (st *PinStats) describe() string {
	if st == nil {
		return "not pinned: the servers under test and the load generator shared every CPU"
	}
	var procs []string
	for _, pp := range st.Processes {
		procs = append(procs, fmt.Sprintf("%s pid %d on %v", pp.Name, pp.PID, pp.CPUs))
	}
	return fmt.Sprintf("pinned: the servers under test on CPU %d, the load generator and the devices on CPU %d (%s)",
		st.ServerCPU, st.GeneratorCPU, strings.Join(procs, "; "))
}
