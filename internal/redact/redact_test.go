package redact

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestError(t *testing.T) {
	tcp := func(s string) *net.TCPAddr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	timeout := &net.OpError{Op: "read", Net: "tcp", Source: tcp("127.0.0.1:18443"), Addr: tcp("127.0.0.1:37380"), Err: os.ErrDeadlineExceeded}
	reset := &net.OpError{Op: "read", Net: "tcp", Source: tcp("[2001:db8::1]:443"), Addr: tcp("[2001:db8::7]:50000"), Err: syscall.ECONNRESET}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("control stream reset"), "control stream reset"},
		{timeout, "read tcp ADDR->ADDR: i/o timeout"},
		{fmt.Errorf("websocket session ended: %w", timeout), "websocket session ended: read tcp ADDR->ADDR: i/o timeout"},
		{reset, "read tcp ADDR->ADDR: connection reset by peer"},
		{errors.New("dial 198.51.100.7:8443 and [fe80::1%eth0]:9 failed"), "dial ADDR and ADDR failed"},
		{errors.New("version 1.2.3 at 10:30:00"), "version 1.2.3 at 10:30:00"},
	} {
		if got := Error(tc.err); got != tc.want {
			t.Errorf("Error(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if strings.Contains(Error(tc.err), "127.0.0.1") {
			t.Errorf("an address left in %q", Error(tc.err))
		}
	}
}
