package wire

import (
	"fmt"
	"net"
	"strconv"
)

// CheckRedirect reports whether s can be a GOAWAY redirect: HOST:PORT as
// net.JoinHostPort writes it (an IPv6 literal in brackets,
// "[2001:db8::1]:8443"), printable ASCII, at most 255 bytes, with a port
// from 1 to 65535.
func CheckRedirect(s string) error {
	if len(s) > maxTextLen {
		return fmt.Errorf("wire: redirect longer than %d bytes", maxTextLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return fmt.Errorf("wire: redirect %q: not printable ASCII without spaces", s)
		}
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("wire: redirect %q: want HOST:PORT, [IPv6]:PORT: %w", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
		return fmt.Errorf("wire: redirect %q: port must be 1..65535", s)
	}
	if host == "" {
		return fmt.Errorf("wire: redirect %q: no host", s)
	}
	return nil
}
