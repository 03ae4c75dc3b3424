package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/pixelrelay/relay/httperr"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/webhook"
	"github.com/pixelrelay/relay/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
)

// ConnectPath is where browsers and other WebTransport devices connect.
const ConnectPath = "/connect"

// listenQUIC starts the one QUIC listener of the UDP port. It dispatches
// connections by ALPN: awtrix-relay/1 to the raw QUIC device transport, h3
// to HTTP/3, which serves webhooks, the device page and WebTransport device
// sessions.
func (n *Node) listenQUIC() error {
	// Under a handshake spike, make unvalidated sources prove their
	// address with a Retry round trip first, so that the relay answers no
	// spoofed Initial with more than it received.
	// RetryAbove 0 turns this off.
	// A source that proved its address lately (knownSources) skips it.
	spike := limit.NewBucket(limit.Rate{PerSecond: float64(n.cfg.RetryAbove), Burst: n.cfg.RetryAbove})
	retries := promauto.With(n.metrics).NewCounter(prometheus.CounterOpts{Name: "relay_quic_retries_total",
		Help: "QUIC handshakes made to answer a Retry first (new connections above --retry-above per second)."})
	skipped := promauto.With(n.metrics).NewCounter(prometheus.CounterOpts{Name: "relay_quic_retries_skipped_total",
		Help: "QUIC handshakes above --retry-above let through without a Retry: their source proved its address lately (--known-sources)."})
	n.known = newKnownSources(n.cfg.KnownSources, n.cfg.KnownSourceTTL)
	n.quicT = &quic.Transport{Conn: n.udp, TokenGeneratorKey: n.cfg.QUICTokenKey, VerifySourceAddress: func(a net.Addr) bool {
		now := time.Now()
		switch {
		case spike.Allow(now):
			return false
		case n.known.known(a, now):
			skipped.Inc()
			return false
		}
		retries.Inc()
		return true
	}}
	qtls := n.cfg.TLS
	if n.cfg.UDPTLS != nil {
		qtls = n.cfg.UDPTLS
	}
	qtls = qtls.Clone()
	qtls.NextProtos = []string{wire.ALPN, http3.NextProtoH3}
	var err error
	if n.quicL, err = n.quicT.Listen(qtls, n.quicConfigPerSource()); err != nil {
		return fmt.Errorf("server: quic listen: %w", err)
	}
	n.wt = &webtransport.Server{
		H3: &http3.Server{
			Handler:        n.h3Mux(),
			MaxHeaderBytes: n.cfg.MaxHeaderBytes,
		},
		CheckOrigin: n.checkOrigin,
	}
	return nil
}

// quicMaxIncomingStreams bounds the streams a peer may have open at once;
// WebSocket sessions get the same bound.
const quicMaxIncomingStreams = 32

// quicMaxStreamWindow is what one stream may carry unread: one maximum
// REPLY (or, from HTTP/3 callers, one maximum webhook body).
func quicMaxStreamWindow(maxBody int) int { return max(wire.MaxReplyBody, maxBody) + 1024 }

// quicConfig serves every ALPN, since quic-go picks the configuration before
// the handshake names the protocol.
func (n *Node) quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout: n.cfg.HandshakeTimeout,
		MaxIdleTimeout:       n.cfg.Session.IdleTimeout,
		// HTTP/3 callers multiplex requests and a WebTransport device needs
		// its CONNECT stream plus the control stream. A raw QUIC device
		// opens only the control stream: the relay never reads any other,
		// so what such a stream can carry is bounded by flow control.
		MaxIncomingStreams:    quicMaxIncomingStreams,
		MaxIncomingUniStreams: 8, // HTTP/3 control and QPACK streams
		// Replies are at most 64 KiB; small windows keep idle sessions cheap.
		InitialStreamReceiveWindow:     16 << 10,
		MaxStreamReceiveWindow:         uint64(quicMaxStreamWindow(n.cfg.Webhook.MaxBody)),
		InitialConnectionReceiveWindow: 32 << 10,
		MaxConnectionReceiveWindow:     1 << 20,
		// WebTransport needs both.
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
	}
}

// errHandshakeLimit refuses a connection attempt from a source over its
// handshake budget; quic-go answers it with CONNECTION_REFUSED.
var errHandshakeLimit = errors.New("server: source over its handshake rate")

// quicConfigPerSource is quicConfig behind a per-source handshake budget
// (HandshakesPerSource, --handshake-ip-rate), so that one address cannot spend the relay's
// handshake CPU for everyone. Sources are keyed as limit.Source does: many
// clocks behind one NAT share a budget, hence the generous default.
func (n *Node) quicConfigPerSource() *quic.Config {
	conf := n.quicConfig()
	perSource := limit.New[netip.Addr](n.cfg.HandshakesPerSource)
	if perSource.Unlimited() {
		return conf
	}
	refused := promauto.With(n.metrics).NewCounter(prometheus.CounterOpts{Name: "relay_quic_handshakes_refused_total",
		Help: "QUIC connection attempts refused: the source was over its handshake rate (--handshake-ip-rate)."})
	conf.GetConfigForClient = func(info *quic.ClientInfo) (*quic.Config, error) {
		var src netip.Addr
		if ua, ok := info.RemoteAddr.(*net.UDPAddr); ok {
			src = ua.AddrPort().Addr()
		}
		if ok, _ := perSource.Allow(limit.Source(src), time.Now()); !ok {
			refused.Inc()
			return nil, errHandshakeLimit
		}
		return conf, nil
	}
	return conf
}

func (n *Node) acceptQUIC() error {
	for {
		c, err := n.quicL.Accept(context.Background())
		if err != nil {
			if errors.Is(err, quic.ErrServerClosed) {
				return nil
			}
			return err
		}
		// The handshake is complete: the source receives at its address.
		// So does one whose session ends, however long ago it connected.
		n.known.add(c.RemoteAddr(), time.Now())
		context.AfterFunc(c.Context(), func() { n.known.add(c.RemoteAddr(), time.Now()) })
		st := c.ConnectionState().TLS
		if st.DidResume {
			n.quicResumed.Inc()
		}
		alpn := st.NegotiatedProtocol
		if n := n.quicConns[alpn]; n != nil {
			n.Inc()
		}
		switch alpn {
		case wire.ALPN:
			n.dev.Handle(transport.QUIC(c))
		case http3.NextProtoH3:
			n.conns.Go(func() { n.wt.ServeQUICConn(c) })
		default:
			c.CloseWithError(quic.ApplicationErrorCode(wire.CloseProtocol), "no application protocol")
		}
	}
}

// h3Mux routes HTTP/3 requests: webhooks, WebTransport device sessions and
// the pages, the same handler as on TCP. OPTIONS * goes to the pages too:
// ServeMux answers it an empty 400 with Connection: close, which is no
// valid HTTP/3 response (clients reject it).
func (n *Node) h3Mux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(webhook.Path, n.hook.ServeHTTP)
	mux.HandleFunc(ConnectPath, n.connectWebTransport)
	mux.Handle("/", n.pages)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.RequestURI == "*" {
			n.pages.ServeHTTP(w, req)
			return
		}
		mux.ServeHTTP(w, req)
	})
}

// connectWebTransport turns a CONNECT request into a device session.
func (n *Node) connectWebTransport(w http.ResponseWriter, req *http.Request) {
	// Checked before the upgrader (which checks it again) so that a
	// refusal gets the relay's JSON answer and counts.
	if !n.checkOrigin(req) {
		n.hook.RefuseHTTP(w, httperr.OriginNotAllowed)
		return
	}
	sess, err := n.wt.Upgrade(w, req)
	if err != nil {
		n.hook.RefuseHTTP(w, httperr.BadRequest)
		return
	}
	n.dev.Handle(transport.WebTransport(sess))
}

// checkOrigin is originAllowed for a WebTransport upgrade.
func (n *Node) checkOrigin(req *http.Request) bool {
	return n.originAllowed(req.Header.Get("Origin"), req.Host)
}
