package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
)

// heldMessage serves one message stream on a raw device: it reads the
// MESSAGE to its FIN, reports that on arrived, never answers, and returns
// how the relay ended the stream.
func heldMessage(c *quic.Conn, arrived chan<- struct{}) <-chan error {
	ended := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), protoWait)
		defer cancel()
		s, err := c.AcceptStream(ctx)
		if err != nil {
			ended <- err
			return
		}
		if _, err := io.ReadAll(s); err != nil {
			ended <- fmt.Errorf("reading the message: %w", err)
			return
		}
		close(arrived)
		// The send side's context ends when the relay stops reading
		// (STOP_SENDING), with the code as its cause.
		select {
		case <-s.Context().Done():
			ended <- context.Cause(s.Context())
		case <-ctx.Done():
			ended <- errors.New("the relay never reset the message stream")
		}
	}()
	return ended
}

// wantCancelled checks that the relay reset the device's stream with 0x1.
func wantCancelled(t *testing.T, err error) {
	t.Helper()
	var se *quic.StreamError
	if !errors.As(err, &se) || !se.Remote || se.ErrorCode != wire.StreamCancelled {
		t.Fatalf("message stream ended with %v; want a reset 0x%x from the relay", err, wire.StreamCancelled)
	}
}

// TestCallerHangUpResetsTheDevice: a webhook caller that gives up while
// the device works (curl -m 1, a killed process, a cancelled HTTP/3
// request) has the device's stream reset with 0x1 at once, is counted as
// caller_gone, and frees its in-flight slot long before the ack timeout.
func TestCallerHangUpResetsTheDevice(t *testing.T) {
	const ackTimeout = time.Minute // far beyond WaitFor: only the hang-up can free the slot
	e := relaytest.Start(t, func(c *server.Config) {
		c.Session.MaxInflight = 1
		c.Webhook.AckTimeout = ackTimeout
	})
	hangUps := []struct {
		name   string
		hangUp func(t *testing.T, tok string, arrived <-chan struct{})
	}{
		{"HTTP/1.1 close", func(t *testing.T, tok string, arrived <-chan struct{}) {
			c := postRaw(t, e, tok)
			<-arrived
			c.Close() // close_notify, then FIN: what curl -m does
		}},
		{"HTTP/1.1 reset", func(t *testing.T, tok string, arrived <-chan struct{}) {
			c := postRaw(t, e, tok)
			<-arrived
			c.NetConn().(*net.TCPConn).SetLinger(0)
			c.NetConn().Close() // RST, as from a killed process with unread data
		}},
		{"HTTP/3 cancel", func(t *testing.T, tok string, arrived <-chan struct{}) {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.URL("notify", tok), strings.NewReader(`{}`))
			done := make(chan error, 1)
			go func() {
				resp, err := h3Client(t, e).Do(req)
				if err == nil {
					resp.Body.Close()
					err = fmt.Errorf("got HTTP %d", resp.StatusCode)
				}
				done <- err
			}()
			<-arrived
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("HTTP/3 request: %v, want it cancelled", err)
			}
		}},
	}
	for i, h := range hangUps {
		t.Run(h.name, func(t *testing.T) {
			tok := wire.NewToken()
			c, _ := login(t, e, tok)
			arrived := make(chan struct{})
			ended := heldMessage(c, arrived)
			h.hangUp(t, tok, arrived)
			wantCancelled(t, <-ended)
			relaytest.WaitFor(t, func() bool {
				return metric(t, e, `relay_webhooks_total{outcome="caller_gone"}`) == float64(i+1)
			})
			// The one in-flight slot is free again: the next webhook is
			// delivered, not refused as busy.
			done := answer(c, wire.Reply{Status: 200, Body: []byte(`{"next":true}`)}.Append(nil))
			if status, body := e.Post(t, "notify", tok, `{}`); status != 200 {
				t.Fatalf("next webhook: %d %s, want 200", status, body)
			}
			if a := <-done; a.err != nil {
				t.Fatalf("device side: %v", a.err)
			}
			if n := metric(t, e, `relay_webhooks_total{outcome="delivered"}`); n != float64(i+1) {
				t.Fatalf("%v webhooks counted as delivered, want %d: the abandoned one is not", n, i+1)
			}
		})
	}
}

// postRaw sends a webhook over a TLS connection of its own and returns
// the connection without reading the answer.
func postRaw(t *testing.T, e *relaytest.Relay, tok string) *tls.Conn {
	t.Helper()
	tlsConf := e.TLS.Clone()
	tlsConf.NextProtos = []string{"http/1.1"}
	c, err := tls.Dial("tcp", e.Addr, tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /cloud?mode=notify HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", tok)
	return c
}
