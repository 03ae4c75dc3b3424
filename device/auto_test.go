package device_test

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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
			addr := tcpOnlyFront(t, r.Addr, mode == "blackholed")
			a := newAgent(t, r.TLS, addr)
			a.agent.Auto = true
			start := time.Now()
			a.run(t)
			recv(t, a.sessions, "a session over WebSocket")
			took := time.Since(start)
			t.Logf("UDP %s: logged in over WebSocket after %v", mode, took.Round(time.Millisecond))
			if took > 2*time.Second {
				t.Fatalf("logged in after %v; want within 2 s", took)
			}
			if got := r.Logs.String(); !strings.Contains(got, "transport=websocket") {
				t.Fatalf("the relay logged no WebSocket session:\n%s", got)
			}
			wantStatus(t, r, a.token(t), 200)
		})
	}
}

// tcpOnlyFront forwards TCP on a new loopback port to relay and blocks
// UDP on it: nothing listens there, or (blackhole) a socket reads and
// drops every datagram.
func tcpOnlyFront(t *testing.T, relay string, blackhole bool) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		var hole *net.UDPConn
		if blackhole {
			if hole, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
				ln.Close()
				continue // that UDP port is taken: another pair
			}
			go func() {
				buf := make([]byte, 2048)
				for {
					if _, _, err := hole.ReadFrom(buf); err != nil {
						return
					}
				}
			}()
		}
		var conns sync.WaitGroup
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns.Go(func() { pipe(c, relay) })
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			if hole != nil {
				hole.Close()
			}
			conns.Wait()
		})
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	t.Fatal("no loopback port free on TCP and UDP")
	return ""
}

// pipe copies c to and from a new connection to addr until either ends.
func pipe(c net.Conn, addr string) {
	defer c.Close()
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}
