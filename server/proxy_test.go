package server_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/pires/go-proxyproto"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
)

// postVia sends one webhook over a TCP connection that opens with hdr (a
// PROXY protocol header; nil sends none) and returns its status, or an
// error if the relay closed the connection.
func postVia(t *testing.T, e *relaytest.Relay, hdr *proxyproto.Header, tok string) (int, error) {
	t.Helper()
	raw, err := net.Dial("tcp", e.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if hdr != nil {
		if _, err := hdr.WriteTo(raw); err != nil {
			t.Fatal(err)
		}
	}
	conf := e.TLS.Clone()
	conf.ServerName = "127.0.0.1"
	c := tls.Client(raw, conf)
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	fmt.Fprintf(c, "POST /cloud?mode=notify HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer %s\r\nContent-Length: 2\r\n\r\n{}", tok)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func proxied(src string, version byte) *proxyproto.Header {
	return &proxyproto.Header{
		Version: version, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      &net.TCPAddr{IP: net.ParseIP(src), Port: 40000},
		DestinationAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8443},
	}
}

// TestProxyProtocol: behind a TCP balancer listed in --proxy-from, the
// source a PROXY header names (v1 or v2) is the caller's for the per-source
// limit; anyone else who sends a header is cut off, and without one is
// served as a direct caller.
func TestProxyProtocol(t *testing.T) {
	limitOne := func(c *server.Config) { c.Webhook.PerSource = limit.Rate{PerSecond: 0.001, Burst: 1} }
	t.Run("trusted balancer", func(t *testing.T) {
		e := relaytest.Start(t, func(c *server.Config) { limitOne(c); c.ProxyFrom = []string{"127.0.0.0/8"} })
		tok := wire.NewToken()
		e.Dial(t, tok, echo("d"))
		// Two callers behind the balancer: a bucket each.
		for _, tc := range []struct {
			hdr  *proxyproto.Header
			want int
		}{
			{proxied("203.0.113.7", 1), 200},
			{proxied("203.0.113.8", 2), 200},
			{proxied("203.0.113.7", 2), 429}, // its one request is spent
			{nil, 200},                       // the balancer's own address, direct
		} {
			if s, err := postVia(t, e, tc.hdr, tok); err != nil || s != tc.want {
				t.Fatalf("webhook via %v: %d %v, want %d", tc.hdr, s, err, tc.want)
			}
		}
	})
	t.Run("anyone else", func(t *testing.T) {
		e := relaytest.Start(t, func(c *server.Config) { limitOne(c); c.ProxyFrom = []string{"10.0.0.0/8"} })
		tok := wire.NewToken()
		e.Dial(t, tok, echo("d"))
		s, err := postVia(t, e, proxied("203.0.113.7", 1), tok)
		if err == nil {
			t.Fatalf("a PROXY header from outside --proxy-from was served: %d", s)
		}
		t.Logf("cut off: %v", err)
		if s, err := postVia(t, e, nil, tok); err != nil || s != 200 {
			t.Fatalf("a direct caller: %d %v", s, err)
		}
	})
}
