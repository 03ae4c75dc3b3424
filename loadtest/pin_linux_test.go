package loadtest

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Pinning puts this process on the generator's CPU and a server started
// after it on the servers' CPU, every thread of each, and stop gives this
// process its CPUs back.
func TestPinning(t *testing.T) {
	allowed, err := processCPUs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(allowed) < 2 {
		t.Skipf("--pin needs 2 CPUs (one for the servers, one for the generator), and this test process may run on %v only: pinning is not tested here", allowed)
	}
	p, err := startPinning()
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	if p.server == p.generator || !slices.Contains(allowed, p.server) || !slices.Contains(allowed, p.generator) {
		t.Fatalf("servers on CPU %d, generator on %d, of %v", p.server, p.generator, allowed)
	}
	if got, err := processCPUs(os.Getpid()); err != nil || !slices.Equal(got, []int{p.generator}) {
		t.Errorf("this process may run on %v (%v), want only the generator's CPU %d", got, err, p.generator)
	}

	// A server process as the suite starts one: pinned as soon as it runs.
	cmd := exec.Command(os.Args[0], "-test.run=^TestProcHelper$")
	cmd.Env = append(os.Environ(), helperEnv+"=wait")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	if err := p.child("server")(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if got, err := processCPUs(cmd.Process.Pid); err != nil || !slices.Equal(got, []int{p.server}) {
		t.Errorf("the server may run on %v (%v), want only CPU %d", got, err, p.server)
	}

	st := p.summary()
	if st.ServerCPU != p.server || st.GeneratorCPU != p.generator || len(st.Processes) != 2 {
		t.Fatalf("placement %+v", st)
	}
	if pp := st.Processes[1]; pp.Name != "server" || pp.PID != cmd.Process.Pid || !slices.Equal(pp.CPUs, []int{p.server}) {
		t.Errorf("server's placement %+v", pp)
	}
	if pp := st.Processes[0]; pp.PID != os.Getpid() || !slices.Equal(pp.CPUs, []int{p.generator}) {
		t.Errorf("generator's placement %+v", pp)
	}
	if d := st.describe(); !strings.HasPrefix(d, "pinned: ") || !strings.Contains(d, "server pid") {
		t.Errorf("describe: %q", d)
	}

	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if got, err := processCPUs(os.Getpid()); err != nil || !slices.Equal(got, allowed) {
		t.Errorf("after stop this process may run on %v (%v), want %v back", got, err, allowed)
	}
}
