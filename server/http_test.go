package server_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
