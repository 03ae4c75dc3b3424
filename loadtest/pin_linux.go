package loadtest

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinProcess sets the CPU affinity of every thread of pid to cpus.
// sched_setaffinity works per thread, so the threads are walked, again and
// again until none has another mask: one started meanwhile inherits its
// maker's mask.
func pinProcess(pid int, cpus []int) error {
	var want unix.CPUSet
	for _, c := range cpus {
		want.Set(c)
	}
	for range pinPasses {
		tids, err := threads(pid)
		if err != nil {
			return err
		}
		changed := false
		for _, tid := range tids {
			var cur unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &cur); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread ended
				}
				return fmt.Errorf("sched_getaffinity(%d): %w", tid, err)
			}
			if cur == want {
				continue
			}
			changed = true
			if err := unix.SchedSetaffinity(tid, &want); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("sched_setaffinity(%d, %v): %w", tid, cpus, err)
			}
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("pid %d kept starting threads with other CPUs for %d passes", pid, pinPasses)
}

// cpuSetCPUs is how many CPUs a unix.CPUSet holds (0 to 1023).
const cpuSetCPUs = 1024

// processCPUs is the union of the CPUs pid's threads may run on, sorted.
func processCPUs(pid int) ([]int, error) {
	tids, err := threads(pid)
	if err != nil {
		return nil, err
	}
	var all unix.CPUSet
	for _, tid := range tids {
		var s unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &s); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			return nil, fmt.Errorf("sched_getaffinity(%d): %w", tid, err)
		}
		for i := range s {
			all[i] |= s[i]
		}
	}
	var cpus []int
	for c := range cpuSetCPUs {
		if all.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// threads lists pid's thread ids from /proc.
func threads(pid int) ([]int, error) {
	es, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, fmt.Errorf("threads of pid %d: %w", pid, err)
	}
	tids := make([]int, 0, len(es))
	for _, e := range es {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	slices.Sort(tids)
	return tids, nil
}
