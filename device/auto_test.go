package device_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/transport"
)

// TestAgentAutoFallsBackToWebSocket: with --transport auto, a device whose
// network blocks UDP logs in over WebSocket soon after the head start, in
// both ways UDP is blocked: nothing listens (the kernel answers ICMP port
// unreachable, which QUIC ignores) or a socket swallows every datagram.
// The relay's TCP port is reached through a forwarder on a port whose UDP
// side is blocked.
func TestAgentAutoFallsBackToWebSocket(t *testing.T) {
	for _, mode := range []string{"rejected", "blackholed"} {
		t.Run(mode, func(t *testing.T) {
			r := startRelay(t)
			addr, _ := relaytest.TCPOnlyFront(t, r.Addr, mode == "blackholed")
			a := newAgent(t, r.TLS, addr)
			a.agent.Auto = true
			start := time.Now()
			a.run(t)
			c := recv(t, a.sessions, "a session over WebSocket")
			took := time.Since(start)
			if c.Transport() != transport.KindWebSocket {
				t.Fatalf("UDP %s, yet the session is not over WebSocket", mode)
			}
			t.Logf("UDP %s: logged in over WebSocket after %v", mode, took.Round(time.Millisecond))
			if took > 2*time.Second {
				t.Fatalf("logged in after %v; want within 2 s", took)
			}
			wantStatus(t, r, a.token(t), 200)
		})
	}
}

// TestAgentAutoMovesBackToQUIC: a device that fell back to WebSocket
// moves to QUIC once UDP gets through again, by taking its own token over,
// and every webhook is answered 200 throughout.
func TestAgentAutoMovesBackToQUIC(t *testing.T) {
	// Webhooks back to back to one token: past the per-token limit.
	r := relaytest.Start(t, func(c *server.Config) {
		c.ReconnectSpread = reconnectSpread
		relaytest.NoLimits(c)
	})
	addr, hole := relaytest.TCPOnlyFront(t, r.Addr, true)
	a := newAgent(t, r.TLS, addr)
	a.agent.Auto = true
	a.agent.AutoRetry = 200 * time.Millisecond
	a.run(t)
	// The device's messages, read as they come: a full recorder would
	// hold up the device's handlers.
	drained := make(chan struct{})
	var drain sync.WaitGroup
	drain.Go(func() {
		for {
			select {
			case <-a.got:
			case <-drained:
				return
			}
		}
	})
	defer func() { close(drained); drain.Wait() }()
	if c := recv(t, a.sessions, "a session over WebSocket"); c.Transport() != transport.KindWebSocket {
		t.Fatal("UDP is blackholed, yet the session is not over WebSocket")
	}
	tok := a.token(t)

	// Webhooks all along, one at a time.
	stop, statuses := make(chan struct{}), make(chan int, 10000)
	var sent sync.WaitGroup
	sent.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := r.HTTP.Post(r.URL("notify", tok), "application/json", strings.NewReader(`{}`))
			if err != nil {
				statuses <- 0
				continue
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}
	})

	// The blackhole socket becomes a forwarder to the relay's UDP port.
	// Its reader is gone once a datagram or deadline wakes it: forward
	// from a fresh socket on the same port.
	port := hole.LocalAddr().(*net.UDPAddr).Port
	hole.Close()
	fresh, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: the UDP port %d was taken between close and bind: %v", port, err)
	}
	opened := time.Now()
	relaytest.ForwardUDP(t, fresh, r.Addr)
	c := recv(t, a.sessions, "the session after UDP opened")
	t.Logf("moved back to QUIC %v after UDP opened", time.Since(opened).Round(time.Millisecond))
	if c.Transport() == transport.KindWebSocket {
		t.Fatal("the next session is still over WebSocket")
	}
	close(stop)
	sent.Wait()
	close(statuses)
	n := 0
	for s := range statuses {
		n++
		if s != 200 {
			t.Fatalf("a webhook during the move was answered %d", s)
		}
	}
	if n == 0 {
		t.Fatal("no webhook was sent during the move")
	}
	if s, _ := r.Post(t, "notify", tok, `{}`); s != 200 {
		t.Fatalf("after the move: %d", s)
	}
	t.Logf("%d webhooks during the move, all 200", n)
}
