package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/pires/go-proxyproto"
	"github.com/valyala/fasthttp"
)

// listenMQTT binds the MQTT listeners the config names; behind a TCP
// balancer (ProxyFrom) they read its PROXY header as the HTTPS port does,
// so that the per-source limits count the clock's address, not the
// balancer's.
func (n *Node) listenMQTT() error {
	var err error
	if a := n.cfg.MQTTListen; a != "" {
		if n.mqttL, err = n.listenTCP(a); err != nil {
			return fmt.Errorf("server: mqtt listen: %w", err)
		}
	}
	if a := n.cfg.MQTTSListen; a != "" {
		l, err := n.listenTCP(a)
		if err != nil {
			return fmt.Errorf("server: mqtts listen: %w", err)
		}
		n.mqttsL = tls.NewListener(l, n.mqttTLS())
	}
	return nil
}

// listenTCP listens on addr, under a PROXY protocol listener with
// ProxyFrom; the header must come within the MQTT connect timeout.
func (n *Node) listenTCP(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil || len(n.cfg.ProxyFrom) == 0 {
		return l, err
	}
	policy, err := proxyproto.PolicyFromRanges(n.cfg.ProxyFrom, proxyproto.USE, proxyproto.REJECT)
	if err != nil {
		l.Close()
		return nil, err
	}
	return &proxyproto.Listener{Listener: l, ConnPolicy: policy, ReadHeaderTimeout: n.cfg.MQTT.ConnectTimeout}, nil
}

// mqttTLS is the MQTT-over-TLS side's TLS: the relay's certificate, TLS
// 1.2 with the forward-secret AEAD suites or 1.3, as on HTTPS. No ALPN:
// MQTT clients send "mqtt", "x-amzn-mqtt-ca" or nothing, and a server
// that names protocols refuses a client whose list has none of them.
func (n *Node) mqttTLS() *tls.Config {
	t := n.httpTLS()
	t.NextProtos = nil
	return t
}

// MQTTAddr and MQTTSAddr are the MQTT listeners' addresses, or nil.
func (n *Node) MQTTAddr() net.Addr  { return addrOf(n.mqttL) }
func (n *Node) MQTTSAddr() net.Addr { return addrOf(n.mqttsL) }

func addrOf(l net.Listener) net.Addr {
	if l == nil {
		return nil
	}
	return l.Addr()
}

// serveError answers what fasthttp could not read as a request, except a
// connection the MQTT listener took over: nothing of it is the HTTPS
// server's to answer or count.
func (n *Node) serveError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, errHandedOff) {
		return
	}
	n.hook.ServeError(ctx, err)
}
