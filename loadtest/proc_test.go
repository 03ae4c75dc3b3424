package loadtest

import (
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// burn keeps one core busy for d, a bounded loop.
func burn(d time.Duration) {
	var sum [32]byte
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 1000 {
			sum = sha256.Sum256(sum[:])
		}
	}
}

func TestSamplerSelf(t *testing.T) {
	s, err := StartSampler(os.Getpid(), 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	burn(300 * time.Millisecond)
	m := s.Mark()
	burn(200 * time.Millisecond)
	step := s.Since(m)
	st := s.Stop()
	if st.PID != os.Getpid() {
		t.Errorf("PID %d, want %d", st.PID, os.Getpid())
	}
	if st.CPUPercent <= 0 || st.CPUMaxPct < st.CPUPercent {
		t.Errorf("CPU mean %.1f%%, max %.1f%%: want mean > 0 and max >= mean", st.CPUPercent, st.CPUMaxPct)
	}
	// One busy goroutine: about 100%; the race detector and other tests
	// running in parallel make it anything above a few percent.
	if st.CPUPercent > float64(100*64) {
		t.Errorf("CPU mean %.1f%%: not plausible", st.CPUPercent)
	}
	if st.RSSMB <= 0 || st.RSSMaxMB < st.RSSMB {
		t.Errorf("RSS %.1f MB, max %.1f MB: want > 0 and max >= last", st.RSSMB, st.RSSMaxMB)
	}
	if st.Samples < 3 {
		t.Errorf("%d samples over 500 ms at 20 ms", st.Samples)
	}
	if step.CPUPercent <= 0 || step.Samples < 2 || step.Samples >= st.Samples {
		t.Errorf("Since(mark) = %+v; whole run %+v", step, st)
	}
	t.Logf("whole: %+v", st)
	t.Logf("step:  %+v", step)

	// Stop is idempotent.
	if again := s.Stop(); again != st {
		t.Errorf("second Stop = %+v, want %+v", again, st)
	}
}

func TestRSSSelf(t *testing.T) {
	mb, err := RSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if mb <= 0 {
		t.Errorf("RSS = %v MB", mb)
	}
}

// deadPID returns the PID of a child that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestProcDeadPID(t *testing.T) {
	for _, pid := range []int{deadPID(t), 0, -1} {
		if _, err := StartSampler(pid, time.Second); !errors.Is(err, ErrNoProcess) {
			t.Errorf("StartSampler(%d): %v, want ErrNoProcess", pid, err)
		}
		if _, err := RSS(pid); !errors.Is(err, ErrNoProcess) {
			t.Errorf("RSS(%d): %v, want ErrNoProcess", pid, err)
		}
	}
}

// A process that exits while sampled ends the sampling; the figures taken
// while it ran remain.
func TestSamplerProcessExits(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestProcHelper$")
	cmd.Env = append(os.Environ(), helperEnv+"=wait")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s, err := StartSampler(cmd.Process.Pid, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s.Mark()
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	st := s.Stop()
	if !errors.Is(s.Err(), ErrNoProcess) {
		t.Errorf("Err() = %v, want ErrNoProcess", s.Err())
	}
	if st.Samples < 2 || st.RSSMB <= 0 {
		t.Errorf("stats after exit: %+v", st)
	}
}

func TestProcClockTicks(t *testing.T) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		t.Logf("getconf unavailable (%v), not compared; auxv says %d", err, clockTicks())
		return
	}
	if got, want := strconv.FormatUint(clockTicks(), 10), strings.TrimSpace(string(out)); got != want {
		t.Errorf("clockTicks() = %s, getconf CLK_TCK = %s", got, want)
	}
}
