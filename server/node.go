// Package server assembles a relay node (Node): one address serving, on
// TCP, HTTPS webhooks (fasthttp) and WebSocket device sessions, and on
// UDP, one QUIC listener for raw QUIC device sessions, HTTP/3 webhooks and
// WebTransport device sessions; on both, the device page, one net/http
// handler (frontend.go); the router between them; a private admin
// listener for health checks, metrics and profiles; and the graceful
// drain.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/pires/go-proxyproto"
	"github.com/pixelrelay/relay/cluster"
	"github.com/pixelrelay/relay/internal/buildinfo"
	"github.com/pixelrelay/relay/internal/setting"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/mqtt"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/webhook"
	"github.com/pixelrelay/relay/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
	"github.com/valyala/fasthttp"
)

// Config configures a relay node. Start from DefaultConfig and change what
// differs. The rule for every limit in it, and in its Session and Webhook
// parts, is limit.Rate's: zero turns a limit off. Timeouts and sizes must be
// positive; New says which one is not.
type Config struct {
	Listen string      // HOST:PORT for both TCP (HTTPS) and UDP (QUIC, HTTP/3, WebTransport); see CheckAddr
	Admin  string      // HOST:PORT of the plain-HTTP admin listener; "" disables it
	TLS    *tls.Config // the relay's certificate; NextProtos are set here
	// UDPTLS, if set, serves the UDP side instead of TLS: in development a
	// short-lived certificate that browsers accept by its hash.
	UDPTLS *tls.Config
	// CertHashes, if set, returns the SHA-256 hashes of the UDP side's
	// certificates, which the device page passes to WebTransport as
	// serverCertificateHashes. Nil with certificates browsers trust.
	CertHashes func() [][32]byte
	// AllowOrigins lists the web origins (scheme://host[:port]) whose pages
	// may open WebTransport device sessions; the relay's own page always may.
	AllowOrigins []string
	// ProxyFrom lists the addresses and CIDRs (a TCP load balancer's) that
	// may open a TCP connection with a PROXY protocol header (v1 or v2),
	// whose source then stands for the caller's in rate limits. A header
	// from anyone else closes the connection. Empty: no PROXY protocol.
	ProxyFrom []string

	// Session holds the device sessions' limits. New sets its MaxBody from
	// Webhook.MaxBody (the one body limit of the node), its Logger and its
	// Metrics.
	Session session.Config
	// Webhook holds the frontend's limits. New sets its Metrics.
	Webhook webhook.Config
	// MQTTListen and MQTTSListen, when set, are the HOST:PORTs where stock
	// clocks log in with their own MQTT client, the relay standing in for
	// their broker: plain TCP (the AWTRIX firmwares have no TLS) and TLS
	// with the relay's certificate. MQTT holds their limits; New sets its
	// Logger and Metrics.
	MQTTListen  string
	MQTTSListen string
	// MQTTOnListen makes Listen's TCP port take plain MQTT too, told from
	// TLS by the first byte, for clocks on networks that block 1883.
	MQTTOnListen bool
	MQTT         mqtt.Config
	// Cluster, with URLs, makes the node one of several over NATS; New
	// sets its Logger and Metrics. Without URLs the node is alone and
	// never touches NATS.
	Cluster cluster.Config
	// ReadyNeedsCluster makes /readyz answer 503 while a clustered node
	// is not connected to NATS (it still serves its own devices).
	ReadyNeedsCluster bool

	// WebSocketWriteTimeout bounds every write to a WebSocket device: one
	// that takes no data for this long is closed, so that it cannot hold
	// its session, or a drain.
	WebSocketWriteTimeout time.Duration

	HTTPReadTimeout  time.Duration // reading one request, headers and body
	HTTPIdleTimeout  time.Duration // keep-alive connection with no request
	MaxHeaderBytes   int           // request line and headers (431 above)
	DrainTimeout     time.Duration // SIGTERM to exit, at most
	ReconnectSpread  time.Duration // devices told to come back within this window; 0: at once
	HandshakeTimeout time.Duration // QUIC handshake
	// RetryAbove is the rate of new QUIC connections per second above
	// which unvalidated sources must first answer a Retry; 0: never.
	RetryAbove int
	// KnownSources is how many source addresses that proved themselves
	// lately (a completed handshake, an ended session) are remembered to
	// skip that Retry, each for KnownSourceTTL; 0: none.
	KnownSources   int
	KnownSourceTTL time.Duration
	// QUICTokenKey encrypts the address-validation tokens (NEW_TOKEN) the
	// relay gives devices, which spare them the Retry when they come back.
	// A key kept across restarts (cmd/relay keeps it in the state
	// directory) keeps their tokens good; nil: a new key per process.
	QUICTokenKey *quic.TokenGeneratorKey
	// HandshakesPerSource bounds new QUIC connections from one source (an
	// IPv4 address, an IPv6 /64).
	HandshakesPerSource limit.Rate

	Logger *slog.Logger // nil discards
}

// Defaults for Config.
const (
	DefaultListen           = ":8443"
	DefaultAdmin            = "127.0.0.1:9443"
	DefaultHTTPReadTimeout  = 10 * time.Second
	DefaultHTTPIdleTimeout  = 60 * time.Second
	DefaultMaxHeaderBytes   = 8 << 10
	DefaultDrainTimeout     = 15 * time.Second
	DefaultReconnectSpread  = 10 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultRetryAbove       = 200
	DefaultKnownSources     = 65536
	DefaultKnownSourceTTL   = time.Hour

	DefaultWebSocketWriteTimeout = transport.DefaultWSWriteTimeout
)

// DefaultConfig returns the production defaults; TLS is left to the caller.
func DefaultConfig() Config {
	return Config{
		Listen:           DefaultListen,
		Admin:            DefaultAdmin,
		Session:          session.DefaultConfig(),
		Webhook:          webhook.DefaultConfig(),
		MQTT:             mqtt.DefaultConfig(),
		Cluster:          cluster.DefaultConfig(),
		HTTPReadTimeout:  DefaultHTTPReadTimeout,
		HTTPIdleTimeout:  DefaultHTTPIdleTimeout,
		MaxHeaderBytes:   DefaultMaxHeaderBytes,
		DrainTimeout:     DefaultDrainTimeout,
		ReconnectSpread:  DefaultReconnectSpread,
		HandshakeTimeout: DefaultHandshakeTimeout,
		RetryAbove:       DefaultRetryAbove,
		KnownSources:     DefaultKnownSources,
		KnownSourceTTL:   DefaultKnownSourceTTL,

		WebSocketWriteTimeout: DefaultWebSocketWriteTimeout,
		// A NAT full of clocks reconnecting after an outage: 1,000
		// devices are back in 20 s with jittered backoff.
		HandshakesPerSource: limit.Rate{PerSecond: 50, Burst: 200},
	}
}

// Check reports the first setting that cannot work, the parts' included
// (New checks them the same way, so a Config that passes is one New takes,
// unless a port is taken or NATS refuses). It reads the files the cluster
// part names; it writes nothing.
func (c *Config) Check() error {
	if err := c.checkNode(); err != nil {
		return err
	}
	sc := c.Session
	sc.MaxBody = c.Webhook.MaxBody
	if err := sc.Check(); err != nil {
		return err
	}
	if err := c.Webhook.Check(); err != nil {
		return err
	}
	if c.mqttOn() {
		if err := c.MQTT.Check(); err != nil {
			return err
		}
	}
	if len(c.Cluster.URLs) > 0 {
		return c.Cluster.Check()
	}
	return nil
}

// CheckAddr reports whether addr is HOST:PORT with a port number from 0 to
// 65535 (0: one the kernel picks). HOST may be empty for every interface,
// an IPv6 address goes in brackets. A bare port is refused rather than
// guessed at: "443" could mean ":443" or a host named 443, and a service
// name ("https") is refused too, so that every address reads the same.
func CheckAddr(addr string) error {
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return fmt.Errorf("want HOST:PORT, not a bare port (%q for every interface)", ":"+addr)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New(`want HOST:PORT (":8443", "127.0.0.1:8443", "[::1]:8443")`)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q: want a number from 0 to 65535", port)
	}
	return nil
}

// checkNode reports the first node-level setting that cannot work.
func (c *Config) checkNode() error {
	if c.TLS == nil {
		return setting.Errorf("TLS", "server: no TLS configuration")
	}
	if err := CheckAddr(c.Listen); err != nil {
		return setting.Errorf("listen", "server: listen address %q: %w", c.Listen, err)
	}
	for _, a := range []struct{ flag, addr string }{{"admin", c.Admin}, {"mqtt", c.MQTTListen}, {"mqtts", c.MQTTSListen}} {
		if a.addr == "" {
			continue
		}
		if err := CheckAddr(a.addr); err != nil {
			return setting.Errorf(a.flag, "server: %s address %q: %w", a.flag, a.addr, err)
		}
	}
	if len(c.ProxyFrom) > 0 {
		if _, err := proxyproto.PolicyFromRanges(c.ProxyFrom, proxyproto.USE, proxyproto.REJECT); err != nil {
			return setting.Errorf("proxy-from", "server: %w", err)
		}
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{
		{"http-read-timeout", c.HTTPReadTimeout}, {"http-idle-timeout", c.HTTPIdleTimeout}, {"drain-timeout", c.DrainTimeout},
		{"handshake-timeout", c.HandshakeTimeout}, {"websocket-write-timeout", c.WebSocketWriteTimeout}, {"known-source-ttl", c.KnownSourceTTL},
	} {
		if t.d <= 0 {
			return setting.Errorf(t.name, "server: %v: want a positive duration", t.d)
		}
	}
	switch {
	case c.MaxHeaderBytes <= 0:
		return setting.Errorf("max-header-bytes", "server: %d bytes: want a positive size", c.MaxHeaderBytes)
	case c.ReconnectSpread < 0:
		return setting.Errorf("reconnect-spread", "server: %v: want >= 0 (0: at once)", c.ReconnectSpread)
	case c.RetryAbove < 0:
		return setting.Errorf("retry-above", "server: %d: want >= 0 (0: never)", c.RetryAbove)
	case c.KnownSources < 0:
		return setting.Errorf("known-sources", "server: %d: want >= 0 (0: none)", c.KnownSources)
	case c.Webhook.MaxBody > session.MaxBodyLimit:
		return setting.Errorf("max-body", "server: %d bytes over the protocol's limit of %d", c.Webhook.MaxBody, session.MaxBodyLimit)
	}
	if err := c.HandshakesPerSource.Check(); err != nil {
		return setting.Errorf("handshake-ip-rate", "server: %w", err)
	}
	return nil
}

// mqttOn reports whether the node takes MQTT clocks.
func (c *Config) mqttOn() bool { return c.MQTTListen != "" || c.MQTTSListen != "" || c.MQTTOnListen }

// Node is one relay node.
type Node struct {
	cfg    Config
	log    *slog.Logger
	router *router.Router
	dev    *session.Server
	hook   *webhook.Handler
	peers  *cluster.Cluster // nil on a node alone
	mqtt   *mqtt.Server     // nil without MQTT listeners
	mqttL  net.Listener     // plain MQTT; nil without
	mqttsL net.Listener     // MQTT over TLS; nil without

	metrics   *prometheus.Registry          // this node's series, served at /metrics
	quicConns map[string]prometheus.Counter // accepted QUIC connections by ALPN; static
	// wsUpgrader takes WebSocket device sessions on the TCP port; static.
	// Write buffers are pooled: an idle session holds none.
	wsUpgrader websocket.FastHTTPUpgrader
	// quicResumed counts accepted QUIC connections that resumed; static.
	quicResumed prometheus.Counter
	// wsDrops counts the frames WebSocket sessions gave up, by reason;
	// static.
	wsDrops map[string]prometheus.Counter

	tcp   net.Listener
	udp   net.PacketConn
	quicT *quic.Transport
	known *knownSources // sources that skip a Retry; set with quicT
	quicL *quic.Listener
	wt    *webtransport.Server // HTTP/3 and WebTransport on the QUIC listener
	http  *fasthttp.Server
	admin *http.Server
	adml  net.Listener
	conns sync.WaitGroup // HTTP/3 connections being served

	altSvc string // Alt-Svc header advertising HTTP/3; static
	// pages serves every path but /cloud and /connect, on HTTP/3 as it
	// is and on TCP as pagesTCP; static.
	pages    http.Handler
	pagesTCP fasthttp.RequestHandler

	mu       sync.Mutex // guards draining
	draining bool

	aborted atomic.Bool // Abort: the next shutdown is a crash's
}

// New checks cfg and binds the node's listeners. Serve with Run.
func New(cfg Config) (*Node, error) {
	if err := cfg.checkNode(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, router: router.New(), metrics: newRegistry(), quicConns: make(map[string]prometheus.Counter)}
	n.wsUpgrader = websocket.FastHTTPUpgrader{
		ReadBufferSize:  2 << 10,
		WriteBufferPool: &sync.Pool{},
	}
	n.wsUpgrader.CheckOrigin = n.checkOriginWS
	sc := cfg.Session
	sc.MaxBody, sc.Logger, sc.Metrics = cfg.Webhook.MaxBody, cfg.Logger, n.metrics
	var err error
	// The router is the node's one registry of which device holds a
	// token; a cluster plugs itself into it as its mesh, before the
	// sessions and the webhooks use it.
	if len(cfg.Cluster.URLs) > 0 {
		cc := cfg.Cluster
		cc.Logger, cc.Metrics = cfg.Logger, n.metrics
		if n.peers, err = cluster.New(n.router, cc); err != nil {
			return nil, err
		}
	}
	if n.dev, err = session.New(n.router, sc); err != nil {
		n.closePeers()
		return nil, err
	}
	if cfg.mqttOn() {
		mc := cfg.MQTT
		mc.Logger, mc.Metrics = cfg.Logger, n.metrics
		if n.mqtt, err = mqtt.New(n.dev, mc); err != nil {
			n.closePeers()
			return nil, err
		}
	}
	wc := cfg.Webhook
	wc.Metrics = n.metrics
	if n.hook, err = webhook.New(n.router, wc); err != nil {
		n.closePeers()
		return nil, err
	}
	quicConns := promauto.With(n.metrics).NewCounterVec(prometheus.CounterOpts{Name: "relay_quic_connections_total",
		Help: "QUIC connections accepted, by ALPN: awtrix-relay/1 (raw QUIC devices) or h3 (HTTP/3 webhooks, the page, WebTransport devices)."}, []string{"alpn"})
	for _, alpn := range []string{wire.ALPN, http3.NextProtoH3} {
		n.quicConns[alpn] = quicConns.WithLabelValues(alpn)
	}
	wsDrops := promauto.With(n.metrics).NewCounterVec(prometheus.CounterOpts{Name: "relay_websocket_drops_total",
		Help: "Frames WebSocket device sessions gave up, by reason: control_queue_full (a pong or stream reset not sent: the device is not reading), write_timeout (a frame the device took no data of for --websocket-write-timeout; its connection closed)."}, []string{"reason"})
	n.wsDrops = make(map[string]prometheus.Counter)
	for _, r := range []string{transport.WSDropControlQueueFull, transport.WSDropWriteTimeout} {
		n.wsDrops[r] = wsDrops.WithLabelValues(r)
	}
	n.quicResumed = promauto.With(n.metrics).NewCounter(prometheus.CounterOpts{Name: "relay_quic_resumed_total",
		Help: "QUIC connections accepted whose TLS handshake resumed a session (a ticket from this relay or a node sharing its ticket secret)."})

	if n.tcp, n.udp, err = listenPair(cfg.Listen); err != nil {
		n.closePeers()
		return nil, err
	}
	if len(cfg.ProxyFrom) > 0 {
		policy, err := proxyproto.PolicyFromRanges(cfg.ProxyFrom, proxyproto.USE, proxyproto.REJECT)
		if err != nil {
			n.closeListeners()
			n.closePeers()
			return nil, fmt.Errorf("server: proxy-from: %w", err)
		}
		n.tcp = &proxyproto.Listener{Listener: n.tcp, ConnPolicy: policy, ReadHeaderTimeout: cfg.HTTPReadTimeout}
	}
	n.altSvc = fmt.Sprintf(`h3=":%d"; ma=86400`, n.udp.LocalAddr().(*net.UDPAddr).Port)
	n.pages = n.newPages()
	n.pagesTCP = n.newPagesTCP(n.pages)
	if err := n.listenQUIC(); err != nil {
		n.closeListeners()
		n.closePeers()
		return nil, err
	}
	n.http = &fasthttp.Server{
		Handler:                      n.serveTCP,
		ErrorHandler:                 n.serveError,
		MaxRequestBodySize:           cfg.Webhook.MaxBody,
		ReadBufferSize:               cfg.MaxHeaderBytes,
		ReadTimeout:                  cfg.HTTPReadTimeout,
		WriteTimeout:                 cfg.Webhook.AckTimeout + cfg.HTTPReadTimeout,
		IdleTimeout:                  cfg.HTTPIdleTimeout,
		NoDefaultServerHeader:        true,
		DisablePreParseMultipartForm: true,
		// fasthttp's own log lines name the peer's address; we never log one.
		Logger: discardLogger{},
	}
	if s := n.spread(); s < cfg.ReconnectSpread {
		n.log.Warn("reconnect spread capped at two thirds of the drain timeout", "spread", s, "drain_timeout", cfg.DrainTimeout)
	}
	if err := n.listenMQTT(); err != nil {
		n.closeListeners()
		n.closePeers()
		return nil, err
	}
	if cfg.Admin != "" {
		if n.adml, err = net.Listen("tcp", cfg.Admin); err != nil {
			n.closeListeners()
			n.closePeers()
			return nil, fmt.Errorf("server: admin listen: %w", err)
		}
		n.admin = &http.Server{Handler: n.adminMux(), ReadHeaderTimeout: 5 * time.Second}
	}
	return n, nil
}

// listenPair binds TCP and UDP on the same port. With port 0 it takes the
// kernel's TCP choice and retries if that UDP port is taken.
func listenPair(addr string) (net.Listener, net.PacketConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("server: listen address %q: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = 20
	}
	for i := 0; ; i++ {
		tcp, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("server: listen tcp: %w", err)
		}
		p := strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, p))
		if err == nil {
			return tcp, udp, nil
		}
		tcp.Close()
		if i+1 >= tries {
			return nil, nil, fmt.Errorf("server: listen udp: %w", err)
		}
	}
}

// Addr is the relay's public address (TCP and UDP share the port).
func (n *Node) Addr() net.Addr { return n.tcp.Addr() }

// AdminAddr is the admin listener's address, or nil.
func (n *Node) AdminAddr() net.Addr {
	if n.adml == nil {
		return nil
	}
	return n.adml.Addr()
}

// Router exposes the node's router, for tests.
func (n *Node) Router() *router.Router { return n.router }

// Run serves until ctx ends, then drains: new webhooks get 503, devices are
// sent away with spread-out reconnect delays, in-flight deliveries finish,
// and Run returns within DrainTimeout.
func (n *Node) Run(ctx context.Context) error {
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	serve := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("server: %s: %w", name, err)
			}
		}()
	}
	https := plainHTTPListener{Listener: n.tcp}
	if n.cfg.MQTTOnListen {
		https.mqtt = func(c net.Conn) { n.mqtt.ServeConn(c, router.PathMQTTPlain) }
	}
	serve("https", func() error { return n.http.Serve(tls.NewListener(https, n.httpTLS())) })
	serve("quic", n.acceptQUIC)
	if n.mqttL != nil {
		serve("mqtt", func() error { return n.mqtt.Serve(n.mqttL, router.PathMQTTPlain) })
	}
	if n.mqttsL != nil {
		serve("mqtts", func() error { return n.mqtt.Serve(n.mqttsL, router.PathMQTTTLS) })
	}
	if n.admin != nil {
		serve("admin", func() error {
			if err := n.admin.Serve(n.adml); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	n.shutdown()
	wg.Wait()
	return err
}

// httpTLS is the TCP side's TLS: TLS 1.3, and TLS 1.2 with forward-secret
// AEAD suites only, for webhook callers that speak no 1.3 (some
// microcontrollers, old HTTP stacks). QUIC is TLS 1.3 by definition.
func (n *Node) httpTLS() *tls.Config {
	t := n.cfg.TLS.Clone()
	t.MinVersion = tls.VersionTLS12
	t.CipherSuites = tls12Suites
	t.NextProtos = append([]string{"http/1.1"}, t.NextProtos...)
	return t
}

// tls12Suites are the TLS 1.2 suites the TCP side accepts: ECDHE key
// exchange and an AEAD, nothing else (TLS 1.3's suites are not
// configurable and all AEAD).
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// shutdown drains and closes everything, bounded by DrainTimeout.
func (n *Node) shutdown() {
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
	drain := n.cfg.DrainTimeout
	if n.aborted.Load() {
		// A crash: the other nodes lose every binding of this one at once,
		// and the devices get no GOAWAY.
		n.closePeers()
		drain = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()

	n.log.Info("relay draining", "devices", n.dev.Len(), "timeout", n.cfg.DrainTimeout)
	n.hook.Drain()
	// The QUIC listener stays open while devices leave, so that a device
	// dialling now learns at once (REFUSE draining) to go elsewhere or
	// come back later, instead of waiting out a handshake timeout.
	n.dev.Drain(ctx, n.spread())
	if n.mqtt != nil {
		n.mqtt.Close() // the clocks not logged in, and what outstayed the drain
	}
	n.quicL.Close()
	n.http.ShutdownWithContext(ctx)
	n.wt.Close()
	n.quicT.Close() // ends what is left
	n.conns.Wait()
	n.dev.Wait()
	// Last: the sessions that left have unbound their tokens over NATS.
	n.closePeers()
	n.closeListeners()
	if n.admin != nil {
		n.admin.Shutdown(ctx)
	}
	n.log.Info("relay stopped")
}

// newRegistry is a node's metrics: the Go runtime's and the process's
// standard series, the build, and (registered by the parts) the relay's.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b := buildinfo.Read()
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{Name: "relay_build_info", Help: "The running build: always 1, with its module version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.Go}}).Set(1)
	return reg
}

// spread is the window GOAWAY delays are drawn from: ReconnectSpread, but
// within two thirds of the drain timeout, so that a device told to come
// back late still has time to log in elsewhere before the node closes it.
func (n *Node) spread() time.Duration {
	return min(n.cfg.ReconnectSpread, n.cfg.DrainTimeout*2/3)
}

// Abort makes the end of Run's context a crash instead of a drain: the
// node leaves the cluster at once and drops its devices without GOAWAY.
// Tests kill nodes with it.
func (n *Node) Abort() { n.aborted.Store(true) }

// closePeers leaves the cluster, if the node is in one.
func (n *Node) closePeers() {
	if n.peers != nil {
		n.peers.Close()
	}
}

func (n *Node) closeListeners() {
	if n.quicT != nil {
		n.quicT.Close()
	}
	if n.udp != nil {
		n.udp.Close()
	}
	if n.tcp != nil {
		n.tcp.Close()
	}
	if n.adml != nil {
		n.adml.Close()
	}
	for _, l := range []net.Listener{n.mqttL, n.mqttsL} {
		if l != nil {
			l.Close()
		}
	}
}

func (n *Node) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	// Profiles are for operators: the admin listener is never public.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		n.mu.Lock()
		draining := n.draining
		n.mu.Unlock()
		if draining {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		if n.cfg.ReadyNeedsCluster && n.peers != nil && !n.peers.Connected() {
			http.Error(w, "cluster unavailable", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
