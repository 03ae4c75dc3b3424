package loadtest

// This file runs the relay under test as its own process (so that its CPU
// and memory are its own, sampled from /proc), or finds an existing one.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Relay process timings.
const (
	relayStartTimeout = 20 * time.Second // exec to /readyz
	relayStopTimeout  = 10 * time.Second // SIGTERM to exit, then SIGKILL
	relayDrainTimeout = 3 * time.Second  // --drain-timeout we give it
)

// limitsOff turns off the relay's per-source and per-token rate limits,
// when the relay has them: the whole swarm and every caller come from one
// loopback address, and a capacity figure measures the relay's work, not
// its abuse policy. Limits that real devices meet the same way (Retry
// under handshake spikes, takeover budgets) stay on. The MQTT clocks'
// per-source connect rate is off for the same reason: a swarm's clocks
// all come from 127.0.0.1. The operator's own flags (Config.RelayArgs)
// come after and win.
var limitsOff = []string{"--ip-rate", "--token-rate", "--miss-rate", "--handshake-ip-rate", "--mqtt-connect-ip-rate"}

// relayFlags lists the flags bin accepts, from its --help.
func relayFlags(ctx context.Context, bin string) map[string]bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	flags := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		if name, ok := strings.CutPrefix(f, "--"); ok && name != "" {
			flags["--"+name] = true
		}
	}
	return flags
}

// relayArgs are the flags the suite starts bin with, before extra: listen
// and admin are HOST:PORT (port 0 for any free one).
func relayArgs(ctx context.Context, bin, state, listen, admin string, extra []string) []string {
	args := []string{
		"--listen", listen,
		"--admin", admin,
		"--state-dir", state,
		"--drain-timeout", relayDrainTimeout.String(),
		"--reconnect-spread", "0s",
		"--log-format", "text",
	}
	has := relayFlags(ctx, bin)
	for _, f := range limitsOff {
		if has[f] {
			args = append(args, f, "0")
		}
	}
	return append(args, extra...)
}

// relayProc is a relay started by the suite.
type relayProc struct {
	Args     []string // the command line, binary first
	Addr     string   // HOST:PORT, TCP and UDP
	Admin    string   // HOST:PORT of the admin listener
	MQTT     string   // HOST:PORT of the plain MQTT listener (--mqtt), "" without
	CAFile   string
	StateDir string
	PID      int

	bin   string    // static: for a restart
	extra []string  // static: the extra flags, for a restart
	logTo io.Writer // static: every stderr line goes here too; nil: none
	// stopAfter bounds SIGTERM to exit before a kill; 0 is
	// relayStopTimeout. Static, kept by a restart.
	stopAfter time.Duration
	// pin, if set, gets the PID as soon as the process runs (CPU pinning);
	// static, kept by a restart.
	pin func(pid int) error

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
	err    error         // Wait's result, set before exited closes
	logs   *tail         // the relay's last stderr lines
}

// startRelay runs bin on loopback with a fresh state directory under dir
// and waits until it is ready. args are the suite's relay flags, extra
// the operator's (after, so that they win); with mqtt the relay takes
// MQTT clocks on a loopback port (withMQTT). pin, if set, gets the PID as
// soon as the relay runs.
func startRelay(ctx context.Context, bin, dir string, args, extra []string, mqtt bool, pin func(pid int) error) (*relayProc, error) {
	return withMQTT(mqtt, extra, func(mqttArgs []string) (*relayProc, error) {
		return startRelayAt(ctx, bin, filepath.Join(dir, "relay-state"), "127.0.0.1:0", "127.0.0.1:0", slices.Concat(args, mqttArgs, extra), nil, pin)
	})
}

// mqttPortTries bounds withMQTT's attempts.
const mqttPortTries = 5

// withMQTT starts a relay with start, which it gives --mqtt on a free
// loopback port when mqtt is set (unless the operator's extra flags name
// one), and records the address. The relay does not log its MQTT
// address, so the suite picks the port: free when picked, another process
// may take it first, and then the start is tried again on another.
func withMQTT(mqtt bool, extra []string, start func(mqttArgs []string) (*relayProc, error)) (*relayProc, error) {
	if !mqtt {
		return start(nil)
	}
	if addr, ok := lastFlag(extra, "mqtt"); ok && addr != "" {
		p, err := start(nil)
		if err == nil {
			p.MQTT = addr
		}
		return p, err
	}
	for attempt := 1; ; attempt++ {
		addr, err := freeTCPAddr()
		if err != nil {
			return nil, err
		}
		p, err := start([]string{"--mqtt", addr})
		if err == nil {
			p.MQTT = addr
			return p, nil
		}
		if attempt == mqttPortTries || !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
	}
}

// freeTCPAddr is a 127.0.0.1 address with a TCP port free now.
func freeTCPAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("loadtest: a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// lastFlag is the value of the last --name (or -name) in args, as package
// flag reads it: "--name=V" or "--name V".
func lastFlag(args []string, name string) (val string, ok bool) {
	for i, a := range args {
		n, v, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if n != name || !strings.HasPrefix(a, "-") {
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				continue
			}
			v = args[i+1]
		}
		val, ok = v, true
	}
	return val, ok
}

// startRelayAt runs bin with the state directory state (shared by a
// cluster's nodes: one development CA) on listen and admin, and waits until
// it is ready. If logTo is set, it gets every line the relay logs; if pin
// is, the PID as soon as the relay runs.
func startRelayAt(ctx context.Context, bin, state, listen, admin string, args []string, logTo io.Writer, pin func(pid int) error) (*relayProc, error) {
	cmd := exec.Command(bin, relayArgs(ctx, bin, state, listen, admin, args)...)
	cmd.SysProcAttr = childAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: start relay: %w", err)
	}
	r := &relayProc{Args: cmd.Args, StateDir: state, PID: cmd.Process.Pid, bin: bin, extra: args, logTo: logTo, pin: pin,
		cmd: cmd, exited: make(chan struct{}), logs: &tail{max: 40}}

	ready := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			r.logs.add(line)
			if logTo != nil {
				io.WriteString(logTo, line+"\n")
			}
			if kv := logFields(line); !found && kv["listen"] != "" {
				found = true
				ready <- kv
			}
		}
		io.Copy(io.Discard, stderr)
		r.err = cmd.Wait()
		close(r.exited)
	}()

	ctx, cancel := context.WithTimeout(ctx, relayStartTimeout)
	defer cancel()
	fail := func(err error) (*relayProc, error) {
		r.stop()
		return nil, fmt.Errorf("loadtest: relay did not start: %w\n%s", err, r.logs)
	}
	if pin != nil {
		if err := pin(r.PID); err != nil {
			return fail(err)
		}
	}
	var kv map[string]string
	select {
	case kv = <-ready:
	case <-r.exited:
		return fail(fmt.Errorf("exited: %v", r.err))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	r.Addr, r.Admin = kv["listen"], kv["admin"]
	r.CAFile = kv["ca"]
	if r.CAFile == "" {
		r.CAFile = filepath.Join(state, "ca.pem")
	}
	if r.Admin == "" {
		return fail(errors.New("no admin address in its log"))
	}
	if err := waitReady(ctx, "http://"+r.Admin+"/readyz"); err != nil {
		return fail(err)
	}
	return r, nil
}

// stop drains the relay (SIGTERM) and kills it if it does not exit in
// time. It returns the exit error of a relay that did not exit cleanly.
func (r *relayProc) stop() error {
	select {
	case <-r.exited:
		return r.err
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	return r.wait()
}

// wait waits for the relay to exit after a SIGTERM, at most stopAfter,
// then kills it.
func (r *relayProc) wait() error {
	after := r.stopAfter
	if after <= 0 {
		after = relayStopTimeout
	}
	if !waitOrKill(r.cmd.Process, r.exited, after) {
		return fmt.Errorf("loadtest: relay did not stop within %v; killed", after)
	}
	return r.err
}

// waitOrKill waits up to after for a child process to exit (exited
// closes once it has been waited for), then kills it and waits; it
// reports whether the process exited by itself.
func waitOrKill(p *os.Process, exited <-chan struct{}, after time.Duration) bool {
	t := time.NewTimer(after)
	defer t.Stop()
	select {
	case <-exited:
		return true
	case <-t.C:
		p.Kill()
		<-exited
		return false
	}
}

// Restart timings: the ports of a relay that just exited may take a moment
// to be free again.
const (
	restartTries = 20
	restartPause = 100 * time.Millisecond
)

// restart starts the relay again, after it exited, with the same flags on
// the same ports, and waits until it is ready.
func (r *relayProc) restart(ctx context.Context) (*relayProc, error) {
	var err error
	for range restartTries {
		var p *relayProc
		if p, err = startRelayAt(ctx, r.bin, r.StateDir, r.Addr, r.Admin, r.extra, r.logTo, r.pin); err == nil {
			p.stopAfter, p.MQTT = r.stopAfter, r.MQTT // the flags name the same MQTT port
			return p, nil
		}
		if !sleepCtx(ctx, restartPause) {
			break
		}
	}
	return nil, err
}

// alive reports whether the relay is still running.
func (r *relayProc) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// logFields parses the key=value pairs of a slog text line (values may be
// quoted).
func logFields(line string) map[string]string {
	kv := map[string]string{}
	for len(line) > 0 {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			break
		}
		key := line[:eq]
		line = line[eq+1:]
		var val string
		if strings.HasPrefix(line, `"`) {
			if q, err := strconv.QuotedPrefix(line); err == nil {
				val, _ = strconv.Unquote(q)
				line = line[len(q):]
			} else {
				val, line = line, ""
			}
		} else if sp := strings.IndexByte(line, ' '); sp >= 0 {
			val, line = line[:sp], line[sp:]
		} else {
			val, line = line, ""
		}
		kv[key] = val
	}
	return kv
}

// waitReady polls url until it answers 200 or ctx ends.
func waitReady(ctx context.Context, url string) error {
	c := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return fmt.Errorf("%s not ready: %w", url, ctx.Err())
		}
	}
}

// waitTCP waits until addr accepts TCP connections or ctx ends (a relay
// given with --target).
func waitTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return fmt.Errorf("%s not reachable: %w", addr, err)
		}
	}
}

// listenerPID finds the process listening on TCP port of addr on this
// host, from /proc/net/tcp{,6} and the processes' socket descriptors. It
// returns 0 when it cannot tell (another user's process, not Linux).
func listenerPID(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			// sl local_address rem_address st ... inode (field 9)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if lp, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil && int(lp) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + e.Name() + "/fd")
		for _, fd := range fds {
			if l, err := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}

// tail keeps a process's last lines for error messages.
type tail struct {
	max   int
	mu    sync.Mutex // guards lines
	lines []string
}

func (t *tail) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, l)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
