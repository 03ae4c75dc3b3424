package relaytest

import (
	"net"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/pixelrelay/relay/server"
)

// NATS is a NATS server in the test process, on loopback, for clustered
// relays: relaytest.Start(t, nats.Join) makes a node of its cluster.
type NATS struct {
	URL string // nats://127.0.0.1:PORT; the same across Restart

	port int
	srv  *natsserver.Server
}

// StartNATS runs a NATS server until the end of the test.
func StartNATS(tb testing.TB) *NATS {
	tb.Helper()
	n := &NATS{}
	n.start(tb, -1)
	n.URL = n.srv.ClientURL()
	_, port, _ := net.SplitHostPort(n.srv.Addr().String())
	n.port, _ = strconv.Atoi(port)
	tb.Cleanup(n.Stop)
	return n
}

func (n *NATS) start(tb testing.TB, port int) {
	tb.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		tb.Fatalf("relaytest: NATS: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(WaitTimeout) {
		tb.Fatalf("relaytest: NATS not ready within %v", WaitTimeout)
	}
	n.srv = srv
}

// Stop shuts the server down; connected relays lose NATS. Idempotent.
func (n *NATS) Stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// Restart starts the server again on the same address, as a NATS server
// that comes back. Relays reconnect on their own.
func (n *NATS) Restart(tb testing.TB) {
	tb.Helper()
	n.Stop()
	// The port was ours a moment ago; binding it again may need a beat.
	deadline := time.Now().Add(WaitTimeout)
	for {
		srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: n.port, NoLog: true, NoSigs: true})
		if err != nil {
			tb.Fatalf("relaytest: NATS: %v", err)
		}
		go srv.Start()
		if srv.ReadyForConnections(time.Second) {
			n.srv = srv
			return
		}
		srv.Shutdown()
		if time.Now().After(deadline) {
			tb.Fatalf("relaytest: NATS did not restart on port %d", n.port)
		}
	}
}

// Join makes a relay a node of n's cluster; use it as (part of) Start's
// mutate.
func (n *NATS) Join(c *server.Config) { c.Cluster.URLs = []string{n.URL} }

// Kill stops the relay as a crash would: it leaves the cluster at once and
// drops its devices without GOAWAY.
func (r *Relay) Kill() {
	r.Node.Abort()
	r.Stop()
}
