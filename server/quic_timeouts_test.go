package server

// The node's QUIC timeouts, in virtual time: real quic-go with the node's
// own listener configuration (quicConfigPerSource) on a simulated network
// inside a testing/synctest bubble (package vnet). Over real sockets these
// needed sub-second timeouts, whose real-clock bounds flaked under -race.

import (
	"context"
	"crypto/tls"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/vnet"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
)

// simNode serves device sessions the way a node does, on a simulated
// network: the node's QUIC configuration for cfg, and a session server.
func simNode(t *testing.T, cfg Config) (*vnet.Net, *router.Router) {
	t.Helper()
	net := vnet.New(t, 4, 10*time.Millisecond)
	n := &Node{cfg: cfg, metrics: prometheus.NewRegistry()}
	r := router.New()
	sc := cfg.Session
	sc.MaxBody = cfg.Webhook.MaxBody
	s, err := session.New(r, sc)
	if err != nil {
		t.Fatal(err)
	}
	net.Serve(n.quicConfigPerSource(), s)
	return net, r
}

func simLogin(t *testing.T, net *vnet.Net, tok string, conf *quic.Config) *quic.Conn {
	t.Helper()
	c, err := net.RawDial(conf)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, _ := c.OpenStream()
	ctrl.Write(wire.Login{Version: wire.Version, Token: []byte(tok)}.Append(nil))
	if typ, _, err := wire.ReadFrame(ctrl, wire.MaxControlPayload); err != nil || typ != wire.FrameWelcome {
		t.Fatalf("login: %s %v", typ, err)
	}
	return c
}

// TestIdleTimeout: a device that goes silent (no keep-alive) is dropped
// after the node's idle timeout and its token unbound; one that keeps alive
// below it stays for many times as long.
func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = 30 * time.Second
		cfg := DefaultConfig()
		cfg.Session.IdleTimeout = idle
		net, r := simNode(t, cfg)
		silent, alive := wire.NewToken(), wire.NewToken()
		// The device would wait an hour: the node's timeout is the one
		// that counts (QUIC takes the smaller).
		simLogin(t, net, silent, &quic.Config{MaxIdleTimeout: time.Hour})
		loggedIn := time.Now()
		c, err := device.Dial(context.Background(), vnet.RelayAddr.String(), alive,
			device.Options{TLS: net.ClientTLS, UDP: net.Endpoint(), KeepAlive: idle / 3})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if w := c.Welcome(); w.IdleTimeout != idle {
			t.Fatalf("WELCOME announces idle %v, want %v", w.IdleTimeout, idle)
		}

		bound := func(tok string) bool { return r.Lookup(router.KeyOf([]byte(tok))) != nil }
		time.Sleep(idle - time.Second) // measured from the login, the last packet is later
		synctest.Wait()
		if !bound(silent) {
			t.Fatalf("silent device dropped before the idle timeout (%v after login)", time.Since(loggedIn))
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if bound(silent) {
			t.Fatalf("silent device still bound %v after login, idle timeout %v", time.Since(loggedIn), idle)
		}
		time.Sleep(5 * idle)
		synctest.Wait()
		if !bound(alive) {
			t.Fatal("keep-alive device dropped")
		}
	})
}

// TestHandshakeTimeout: a client that stalls mid-handshake past the node's
// handshake timeout is dropped; finishing later does not revive it. A
// prompt one logs in.
func TestHandshakeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hs = 3 * time.Second
		cfg := DefaultConfig()
		cfg.HandshakeTimeout = hs
		net, _ := simNode(t, cfg)
		login := func(stall time.Duration) error {
			tlsConf := net.ClientTLS.Clone()
			tlsConf.NextProtos = []string{wire.ALPN}
			tlsConf.VerifyConnection = func(tls.ConnectionState) error {
				time.Sleep(stall) // the stall under test, in virtual time
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*hs)
			defer cancel()
			c, err := net.Endpoint().Dial(ctx, vnet.RelayAddr, tlsConf, &quic.Config{HandshakeIdleTimeout: 10 * hs})
			if err != nil {
				return err
			}
			defer c.CloseWithError(0, "")
			ctrl, err := c.OpenStream()
			if err != nil {
				return err
			}
			ctrl.Write(wire.Login{Version: wire.Version, Token: []byte(wire.NewToken())}.Append(nil))
			ctrl.SetReadDeadline(time.Now().Add(hs))
			_, _, err = wire.ReadFrame(ctrl, wire.MaxControlPayload)
			return err
		}
		if err := login(0); err != nil {
			t.Fatalf("a prompt handshake failed: %v", err)
		}
		if err := login(hs / 2); err != nil {
			t.Fatalf("a handshake within the timeout failed: %v", err)
		}
		if err := login(2 * hs); err == nil {
			t.Fatal("a handshake stalled past the node's timeout still logged in")
		}
	})
}

// TestSpreadLeavesTimeToMove: GOAWAY delays stay within two thirds of the
// drain timeout, so that the last device told to come back still logs in
// elsewhere before the node closes it.
func TestSpreadLeavesTimeToMove(t *testing.T) {
	for _, tc := range []struct{ spread, drain, want time.Duration }{
		{10 * time.Second, 15 * time.Second, 10 * time.Second},
		{10 * time.Second, 6 * time.Second, 4 * time.Second},
		{0, 15 * time.Second, 0},
	} {
		n := &Node{cfg: Config{ReconnectSpread: tc.spread, DrainTimeout: tc.drain}}
		if got := n.spread(); got != tc.want {
			t.Errorf("spread %v, drain timeout %v: GOAWAY delays within %v, want %v", tc.spread, tc.drain, got, tc.want)
		}
	}
}
