// Package redact takes addresses out of error texts before they reach a
// log: a *net.OpError names both ends of its connection ("read tcp
// 127.0.0.1:8443->198.51.100.7:37380: i/o timeout"), and the relay never
// logs a caller's or a device's address (docs/SECURITY.md).
package redact

import (
	"errors"
	"net"
	"regexp"
	"strings"
)

// Placeholder stands where an address was.
const Placeholder = "ADDR"

// The address forms net's errors print, as a backstop for the ones no
// *net.OpError names: IPv4 with an optional port, bracketed IPv6 with one.
var (
	ipv4 = regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b`)
	ipv6 = regexp.MustCompile(`\[[0-9A-Fa-f:.%a-zA-Z]+\](?::\d{1,5})?`)
)

// Error is err's text with every network address in it replaced by
// Placeholder; "" for nil.
func Error(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	var op *net.OpError
	for e := err; errors.As(e, &op); e = op.Err {
		for _, a := range []net.Addr{op.Source, op.Addr} {
			if a != nil && a.String() != "" {
				s = strings.ReplaceAll(s, a.String(), Placeholder)
			}
		}
		if op.Err == nil {
			break
		}
	}
	s = ipv6.ReplaceAllString(s, Placeholder)
	return ipv4.ReplaceAllString(s, Placeholder)
}
