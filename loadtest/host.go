package loadtest

// This file reads the host's CPU time, to tell the load of other processes
// from the relay's and the generator's: on a shared machine (a laptop, a
// CI runner) they disturb every figure, and a report should say so.

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"time"
)

// hostTicks is the first line of /proc/stat: busy and total clock ticks
// over all CPUs since boot.
type hostTicks struct {
	at          time.Time
	busy, total uint64
	ok          bool
}

func readHostTicks() hostTicks {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostTicks{}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	// cpu user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is already in user.
	if len(f) < 9 || string(f[0]) != "cpu" {
		return hostTicks{}
	}
	t := hostTicks{at: time.Now(), ok: true}
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return hostTicks{}
		}
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t
}

// busyPercent is the CPU the whole host used from t to u (100 = one core).
func (t hostTicks) busyPercent(u hostTicks) (float64, error) {
	wall := u.at.Sub(t.at).Seconds()
	if !t.ok || !u.ok || wall <= 0 || u.busy < t.busy {
		return 0, errors.New("loadtest: no host CPU reading")
	}
	return float64(u.busy-t.busy) / float64(clockTicks()) / wall * 100, nil
}
