package mosquittotest_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/pixelrelay/relay/internal/mosquittotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStartStopRestart: the broker accepts TCP on Addr once Start
// returns, Stop ends the process, and Restart brings it back on the same
// port as a new process.
func TestStartStopRestart(t *testing.T) {
	b := mosquittotest.Start(t)
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") || b.URL() != "tcp://"+b.Addr() {
		t.Fatalf("Addr %q URL %q", b.Addr(), b.URL())
	}
	if b.TLSConfig() != nil {
		t.Fatal("TLSConfig without WithTLS")
	}
	pid := b.PID()
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("PID %d is not a live process", pid)
	}
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	b.Stop()
	if b.PID() != 0 {
		t.Fatal("PID after Stop")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("process %d still there after Stop", pid)
	}
	if c, err := net.Dial("tcp", b.Addr()); err == nil {
		c.Close()
		t.Fatal("broker still accepting after Stop")
	}

	b.Restart()
	if b.PID() == 0 || b.PID() == pid {
		t.Fatalf("PID after Restart %d (was %d)", b.PID(), pid)
	}
	c, err = net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestTLS: WithTLS serves TLS that TLSConfig trusts.
func TestTLS(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.WithTLS())
	if b.URL() != "tls://"+b.Addr() {
		t.Fatalf("URL %q", b.URL())
	}
	c, err := tls.Dial("tcp", b.Addr(), b.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestConfigError: a configuration mosquitto rejects is reported by Start
// with the broker's own words (checked here through a failing fake TB).
func TestConfigError(t *testing.T) {
	ft := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != errFatal {
				panic(r)
			}
		}()
		mosquittotest.Start(ft, mosquittotest.WithConfig("no_such_option true"))
	}()
	if !strings.Contains(ft.msg, "exited before accepting connections") {
		t.Fatalf("Start with a bad config: %q", ft.msg)
	}
}

var errFatal = new(int)

// fatalTB turns Fatalf into a recorded message and a panic, so that a test
// can see Start fail.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(errFatal)
}
