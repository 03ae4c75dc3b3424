package server_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
)

// rawRequest writes req over a fresh TLS connection and reads one response.
func rawRequest(t *testing.T, e *relaytest.Relay, write func(c *tls.Conn)) (*http.Response, []byte) {
	t.Helper()
	c, err := tls.Dial("tcp", e.Addr, e.TLS.Clone())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	write(c)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestHeadersTooLargeGet431(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.MaxHeaderBytes = 2048 })
	tok := wire.NewToken()
	resp, body := rawRequest(t, e, func(c *tls.Conn) {
		io.WriteString(c, "POST /cloud?mode=notify&token="+tok+" HTTP/1.1\r\nHost: x\r\nX-Pad: "+
			strings.Repeat("a", 4096)+"\r\nContent-Length: 2\r\n\r\n{}")
	})
	if resp.StatusCode != 431 || relaytest.ErrorCode(t, body) != "header_too_large" {
		t.Fatalf("%d %s; want 431 header_too_large", resp.StatusCode, body)
	}
}

func TestSlowRequestGets408(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.HTTPReadTimeout = 300 * time.Millisecond })
	resp, body := rawRequest(t, e, func(c *tls.Conn) {
		// Headers promise a body that never comes.
		io.WriteString(c, "POST /cloud?mode=notify&token="+wire.NewToken()+" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	})
	if resp.StatusCode != 408 || relaytest.ErrorCode(t, body) != "request_timeout" {
		t.Fatalf("%d %s; want 408 request_timeout", resp.StatusCode, body)
	}
}

func TestUnparsableRequestGets400(t *testing.T) {
	e := relaytest.Start(t, nil)
	resp, body := rawRequest(t, e, func(c *tls.Conn) {
		io.WriteString(c, "POST /cloud HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n")
	})
	if resp.StatusCode != 400 || relaytest.ErrorCode(t, body) != "bad_request" {
		t.Fatalf("%d %s; want 400 bad_request", resp.StatusCode, body)
	}
}

// TestPlainHTTPOnTheHTTPSPort: a plain-HTTP request to the HTTPS port gets
// a plain-HTTP 400 that says to use https:// and names the port, as
// net/http answers, instead of a connection closed without a byte (curl:
// "Empty reply from server"); in one write or in pieces, and behind a PROXY
// protocol balancer, whose header names the port the caller dialled. The
// caller's address is not logged, and TLS callers are served as before.
func TestPlainHTTPOnTheHTTPSPort(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.ProxyFrom = []string{"127.0.0.0/8"} })
	_, port, _ := net.SplitHostPort(e.Addr)
	plain := func(t *testing.T, hdr *proxyproto.Header, parts ...string) (caller string, answer string) {
		t.Helper()
		c, err := net.Dial("tcp", e.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if hdr != nil {
			if _, err := hdr.WriteTo(c); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range parts {
			if _, err := io.WriteString(c, p); err != nil {
				t.Fatal(err)
			}
		}
		b, err := io.ReadAll(c) // the relay closes after its answer
		if err != nil {
			t.Fatalf("reading the answer: %v (read %q)", err, b)
		}
		return c.LocalAddr().String(), string(b)
	}
	want := func(t *testing.T, answer, port string) {
		t.Helper()
		head, body, _ := strings.Cut(answer, "\r\n\r\n")
		if head != "HTTP/1.0 400 Bad Request" || !strings.HasPrefix(body, "Client sent an HTTP request to an HTTPS server.\n") ||
			!strings.Contains(body, "https://") || !strings.Contains(body, ":"+port) {
			t.Fatalf("answer %q; want a 400 saying to use https:// on port %s", answer, port)
		}
	}
	badRequests := metric(t, e, `relay_webhooks_total{outcome="bad_request"}`)
	var callers []string
	t.Run("one write", func(t *testing.T) {
		caller, answer := plain(t, nil, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		want(t, answer, port)
		callers = append(callers, caller)
	})
	t.Run("in pieces", func(t *testing.T) {
		// The record header's five bytes arrive over three reads.
		caller, answer := plain(t, nil, "PO", "S", "T /cloud?mode=notify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
		want(t, answer, port)
		callers = append(callers, caller)
	})
	t.Run("behind a balancer", func(t *testing.T) {
		hdr := proxied("203.0.113.7", 2) // names 127.0.0.1:8443 as the address dialled
		_, answer := plain(t, hdr, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
		want(t, answer, "8443")
		callers = append(callers, "203.0.113.7")
	})
	t.Run("net/http client", func(t *testing.T) {
		resp, err := http.Get("http://" + e.Addr + "/cloud?mode=notify")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(b), "https://") {
			t.Fatalf("%d %q", resp.StatusCode, b)
		}
	})
	// Each counts, once; the relay closed the connection after counting.
	if got := metric(t, e, `relay_webhooks_total{outcome="bad_request"}`) - badRequests; got != 4 {
		t.Errorf("bad_request moved by %v for 4 plain-HTTP requests", got)
	}
	// HTTPS is served as before.
	if status, body := e.Do(t, http.MethodGet, "https://"+e.Addr+"/nope", "", nil); status != 404 || relaytest.ErrorCode(t, body) != "not_found" {
		t.Fatalf("HTTPS after: %d %s", status, body)
	}
	for _, c := range callers {
		if strings.Contains(e.Logs.String(), c) {
			t.Errorf("the log names the caller %s:\n%s", c, e.Logs)
		}
	}
}
