//go:build unix

package webdriver

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Close ends the whole process group and leaves nothing listening.
func TestStartAndClose(t *testing.T) {
	t.Setenv(fakeDriverEnv, "serve")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := Start(ctx, os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	pid := d.cmd.Process.Pid
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still there after Close: %v", pid, err)
	}
	if _, err := d.NewSession(ctx, Options{}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewSession after Close: %v, want ErrClosed", err)
	}
	if c, err := net.Dial("tcp", strings.TrimPrefix(d.URL, "http://")); err == nil {
		c.Close()
		t.Errorf("%s still answers after Close", d.URL)
	}
}
