// Package vnet is a simulated network for tests that run real QUIC (and
// the relay's sessions on it) inside a testing/synctest bubble, where time
// is virtual: timeouts are asserted exactly, and a test of a 60 s idle
// timeout takes no real time. It wires quic-go's own simulator
// (testutils/simnet, what quic-go tests itself with) into one relay
// endpoint and a few device endpoints, and issues a development PKI that is
// valid at the bubble's clock.
//
// Only tests import this package. Call New inside synctest.Test.
package vnet

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/certs/trust"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
)

// Net is one relay endpoint and some device endpoints on a simulated
// network with a fixed one-way latency.
type Net struct {
	Relay   *simnet.SimConn   // the relay's UDP socket
	Devices []*simnet.SimConn // one UDP socket per device
	Latency time.Duration     // one way, every packet

	ServerTLS *tls.Config // the relay's certificate, from a development CA
	ClientTLS *tls.Config // trusts that CA; ServerName matches the certificate

	t    testing.TB
	used int // device endpoints handed out by Endpoint
}

// RelayAddr is the relay endpoint's address.
var RelayAddr = &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 8443}

// New builds a network of the relay and devices device endpoints, all
// with the given one-way latency, and closes it at the end of the test.
// It must run inside the bubble: the certificates are valid from the
// bubble's start.
func New(t testing.TB, devices int, latency time.Duration) *Net {
	t.Helper()
	dev, err := certs.LoadOrCreateDev(t.TempDir())
	if err != nil {
		t.Fatalf("vnet: dev PKI: %v", err)
	}
	pool, err := trust.CAPool(dev.CAFile)
	if err != nil {
		t.Fatalf("vnet: CA pool: %v", err)
	}
	sn := &simnet.Simnet{Router: &simnet.PerfectRouter{}}
	link := simnet.NodeBiDiLinkSettings{Latency: latency}
	n := &Net{
		Relay:     sn.NewEndpoint(RelayAddr, link),
		Latency:   latency,
		t:         t,
		ServerTLS: dev.TLS,
		// The development certificate names localhost and the loopback
		// addresses; the simulated address is neither.
		ClientTLS: &tls.Config{RootCAs: pool, ServerName: "localhost"},
	}
	for i := range devices {
		addr := &net.UDPAddr{IP: net.IPv4(10, 0, 1, byte(1+i/250)), Port: 1000 + i%250}
		n.Devices = append(n.Devices, sn.NewEndpoint(addr, link))
	}
	if err := sn.Start(); err != nil {
		t.Fatalf("vnet: %v", err)
	}
	t.Cleanup(func() {
		n.Relay.Close()
		for _, d := range n.Devices {
			d.Close()
		}
		sn.Close()
	})
	return n
}

// Serve accepts raw QUIC device connections on the relay endpoint with conf
// and runs each as a session of s, until the end of the test.
func (n *Net) Serve(conf *quic.Config, s *session.Server) {
	n.t.Helper()
	tr := &quic.Transport{Conn: n.Relay}
	tlsConf := n.ServerTLS.Clone()
	tlsConf.NextProtos = []string{wire.ALPN}
	ln, err := tr.Listen(tlsConf, conf)
	if err != nil {
		n.t.Fatalf("vnet: listen: %v", err)
	}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			s.Handle(transport.QUIC(c))
		}
	}()
	n.t.Cleanup(func() {
		ln.Close()
		<-accepted
		tr.Close() // closes every session's connection
		s.Wait()
	})
}

// Endpoint returns a QUIC transport on a device endpoint of its own.
func (n *Net) Endpoint() *quic.Transport {
	n.t.Helper()
	if n.used == len(n.Devices) {
		n.t.Fatal("vnet: out of device endpoints")
	}
	tr := &quic.Transport{Conn: n.Devices[n.used]}
	n.used++
	n.t.Cleanup(func() { tr.Close() })
	return tr
}

// RawDial opens a QUIC connection to the relay with ALPN awtrix-relay/1
// and conf, and does nothing else.
func (n *Net) RawDial(conf *quic.Config) (*quic.Conn, error) {
	tlsConf := n.ClientTLS.Clone()
	tlsConf.NextProtos = []string{wire.ALPN}
	c, err := n.Endpoint().Dial(context.Background(), RelayAddr, tlsConf, conf)
	if err != nil {
		return nil, err
	}
	n.t.Cleanup(func() { c.CloseWithError(0, "") })
	return c, nil
}
