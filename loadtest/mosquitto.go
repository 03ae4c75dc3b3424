package loadtest

// This file runs Eclipse Mosquitto, the reference MQTT broker, as the
// anchor the relay's MQTT clocks are measured against: in the same run
// the same clocks (mqttclient.go) log in to it, and its memory per idle
// connection (idle) and its CONNACK latency (mqttstorm) stand beside the
// relay's. It is Debian's mosquitto 2.0 (make testdeps installs it), in a
// process of its own with a configuration in the run's temporary
// directory: one listener on 127.0.0.1, anonymous, no persistence.
//
// The comparison is of brokers doing less than the relay and more: a
// relay login checks a token and opens a device session, mosquitto's
// takes anyone; mosquitto keeps subscription trees, the relay a clock's
// filters.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// MosquittoBinary is where Debian's mosquitto package installs the broker;
// mosquitto on PATH is tried after it.
const MosquittoBinary = "/usr/sbin/mosquitto"

// Mosquitto process timings and tries.
const (
	mosquittoReadyTimeout = 10 * time.Second // start to accepting TCP
	mosquittoStopTimeout  = 5 * time.Second  // SIGTERM to exit, then SIGKILL
	mosquittoPortTries    = 5
)

// errNoMosquitto: the comparison needs the broker installed.
var errNoMosquitto = errors.New("loadtest: no " + MosquittoBinary + " and no mosquitto on PATH: the MQTT comparison needs Debian's mosquitto (make testdeps, or apt-get install mosquitto)")

// mosquittoProc is a mosquitto started by the suite.
type mosquittoProc struct {
	Addr    string // 127.0.0.1:PORT
	PID     int
	Version string // "mosquitto version 2.0.11"

	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	err    error         // Wait's result, set before exited closes
	logs   *tail         // its last stderr lines
}

// startMosquitto runs mosquitto on a free 127.0.0.1 port with its
// configuration in dir, raises its descriptor limit to this process's
// (a child gets the soft limit Go started with; every idle clock is a
// descriptor), and waits until it accepts TCP. pin, if set, gets its PID
// as soon as it runs.
func startMosquitto(ctx context.Context, dir string, pin func(pid int) error) (*mosquittoProc, error) {
	bin := MosquittoBinary
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("mosquitto"); err != nil {
			return nil, errNoMosquitto
		}
	}
	version := mosquittoVersion(ctx, bin)
	for attempt := 1; ; attempt++ {
		addr, err := freeTCPAddr()
		if err != nil {
			return nil, err
		}
		m, err := runMosquitto(ctx, bin, dir, addr, pin)
		if err == nil {
			m.Version = version
			return m, nil
		}
		if attempt == mosquittoPortTries || !strings.Contains(err.Error(), "Address already in use") {
			return nil, err
		}
	}
}

// mosquittoVersion is the first line of mosquitto -h ("mosquitto version
// 2.0.11"), or "mosquitto" when it says nothing of the kind.
func mosquittoVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "-h").CombinedOutput() // -h exits 3
	first, _, _ := strings.Cut(string(out), "\n")
	if strings.HasPrefix(first, "mosquitto version ") {
		return strings.TrimSpace(first)
	}
	return "mosquitto"
}

// mosquittoConfig is the broker's configuration for addr: no persistence,
// anonymous clients, no connection messages (they carry addresses), no
// connection cap, and TCP_NODELAY. Go sets TCP_NODELAY on every
// connection, the relay's included; mosquitto's default leaves Nagle on,
// which holds each SUBACK after the first until the clock's delayed ACK
// (40 ms here): a login then measures Nagle, not the broker. Its listen
// backlog stays its own, a fixed 100: a storm of more clocks than that
// sees SYNs retried after 1 s, as a real one would.
func mosquittoConfig(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	var c strings.Builder
	if os.Geteuid() == 0 {
		// As root mosquitto drops to the mosquitto user, which cannot read
		// the run's temporary directory.
		c.WriteString("user root\n")
	}
	fmt.Fprintf(&c, "persistence false\nallow_anonymous true\nlog_dest stderr\nlog_type error\nlog_type warning\n"+
		"connection_messages false\nper_listener_settings false\nlistener %s %s\nmax_connections -1\nset_tcp_nodelay true\n", port, host)
	return c.String(), nil
}

// runMosquitto starts mosquitto on addr and waits until it accepts TCP or
// exits.
func runMosquitto(ctx context.Context, bin, dir, addr string, pin func(pid int) error) (*mosquittoProc, error) {
	conf, err := mosquittoConfig(addr)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("loadtest: mosquitto: %w", err)
	}
	cmd := exec.Command(bin, "-c", path)
	cmd.SysProcAttr = childAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: start mosquitto: %w", err)
	}
	m := &mosquittoProc{Addr: addr, PID: cmd.Process.Pid, cmd: cmd, exited: make(chan struct{}), logs: &tail{max: 20}}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			m.logs.add(sc.Text())
		}
		io.Copy(io.Discard, stderr)
		m.err = cmd.Wait()
		close(m.exited)
	}()
	fail := func(err error) (*mosquittoProc, error) {
		m.stop()
		return nil, fmt.Errorf("loadtest: mosquitto did not start: %w\n%s", err, m.logs)
	}
	if err := raiseNoFile(m.PID); err != nil {
		return fail(err)
	}
	if pin != nil {
		if err := pin(m.PID); err != nil {
			return fail(err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, mosquittoReadyTimeout)
	defer cancel()
	var d net.Dialer
	for {
		if c, err := d.DialContext(rctx, "tcp", addr); err == nil {
			c.Close()
			return m, nil
		}
		select {
		case <-m.exited:
			return nil, fmt.Errorf("loadtest: mosquitto exited before accepting connections (%v):\n%s", m.err, m.logs)
		case <-rctx.Done():
			return fail(rctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends mosquitto with SIGTERM, and kills it if it has not exited in
// time. It returns the exit error of a broker that did not exit cleanly.
func (m *mosquittoProc) stop() error {
	select {
	case <-m.exited:
		return m.err
	default:
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	if !waitOrKill(m.cmd.Process, m.exited, mosquittoStopTimeout) {
		return fmt.Errorf("loadtest: mosquitto did not stop within %v; killed", mosquittoStopTimeout)
	}
	return m.err
}
