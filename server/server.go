// Package server assembles a relay node: one address serving HTTPS webhooks
// over TCP (fasthttp) and device sessions over QUIC on UDP, the router
// between them, and a private admin listener for health checks.
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
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/webhook"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
	"github.com/valyala/fasthttp"
)

// Config configures a relay node. Zero durations and sizes take defaults.
type Config struct {
	Listen string      // HOST:PORT for both TCP (HTTPS) and UDP (QUIC, HTTP/3, WebTransport)
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

	MaxBody     int // largest webhook body (413 above)
	MaxInflight int // messages open at once per device (503 above)
	MaxDevices  int // live device sessions on this node (logins refused above)
	// TakeoverRate (per second; negative disables) and TakeoverBurst bound
	// how often a login may replace a live session with the same token.
	TakeoverRate  float64
	TakeoverBurst int
	AckTimeout    time.Duration // wait for a device's reply (504 after)
	LoginTimeout  time.Duration // from QUIC handshake to a valid login
	IdleTimeout   time.Duration // QUIC idle timeout; devices keep alive below it

	HTTPReadTimeout  time.Duration // reading one request, headers and body
	HTTPIdleTimeout  time.Duration // keep-alive connection with no request
	MaxHeaderBytes   int           // request line and headers (431 above)
	DrainTimeout     time.Duration // SIGTERM to exit, at most
	ReconnectSpread  time.Duration // devices told to come back within this window
	HandshakeTimeout time.Duration // QUIC handshake
	// RetryAbove is the rate of new QUIC connections per second above
	// which unvalidated sources must first answer a Retry.
	RetryAbove int
	// HandshakeIPRate (per second) and HandshakeIPBurst bound new QUIC
	// connections from one source (IPv4 address, IPv6 /64); negative
	// disables.
	HandshakeIPRate  float64
	HandshakeIPBurst int

	// Webhook rate limits (429 rate_limited above), each a rate per second
	// and a burst: webhooks per device token, webhooks per source address
	// (an IPv4 address or an IPv6 /64), and no_device answers per source.
	// Zero takes the default (webhook.Default*); a negative rate or burst
	// turns the limit off.
	TokenRate  float64
	TokenBurst int
	IPRate     float64
	IPBurst    int
	MissRate   float64
	MissBurst  int

	Logger *slog.Logger
}

// MaxBodyLimit is the largest MaxBody a MESSAGE frame can carry.
const MaxBodyLimit = wire.MaxPayload - 1 - wire.MaxModeLen

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
	// A NAT full of clocks reconnecting after an outage: 1,000 devices
	// are back in 20 s with jittered backoff.
	DefaultHandshakeIPRate  = 50
	DefaultHandshakeIPBurst = 200
)

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AckTimeout, webhook.DefaultAckTimeout)
	def(&c.LoginTimeout, transport.DefaultLoginTimeout)
	def(&c.IdleTimeout, transport.DefaultIdleTimeout)
	def(&c.HTTPReadTimeout, DefaultHTTPReadTimeout)
	def(&c.HTTPIdleTimeout, DefaultHTTPIdleTimeout)
	def(&c.DrainTimeout, DefaultDrainTimeout)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	if c.ReconnectSpread < 0 {
		c.ReconnectSpread = 0
	}
	if c.HandshakeIPRate == 0 {
		c.HandshakeIPRate = DefaultHandshakeIPRate
	}
	if c.HandshakeIPBurst == 0 {
		c.HandshakeIPBurst = DefaultHandshakeIPBurst
	}
	if c.HandshakeIPRate < 0 || c.HandshakeIPBurst < 0 {
		c.HandshakeIPRate, c.HandshakeIPBurst = 0, 0
	}
	if c.RetryAbove <= 0 {
		c.RetryAbove = DefaultRetryAbove
	}
	limit := func(r *float64, defRate float64, b *int, defBurst int) {
		if *r == 0 {
			*r = defRate
		}
		if *b == 0 {
			*b = defBurst
		}
	}
	limit(&c.TokenRate, webhook.DefaultTokenRate, &c.TokenBurst, webhook.DefaultTokenBurst)
	limit(&c.IPRate, webhook.DefaultIPRate, &c.IPBurst, webhook.DefaultIPBurst)
	limit(&c.MissRate, webhook.DefaultMissRate, &c.MissBurst, webhook.DefaultMissBurst)
	if c.MaxBody <= 0 {
		c.MaxBody = transport.DefaultMaxBody
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = transport.DefaultMaxInflight
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Relay is one relay node.
type Relay struct {
	cfg    Config
	log    *slog.Logger
	router *router.Router
	dev    *transport.Server
	hook   *webhook.Handler

	metrics   *metrics.Set                // this node's series, served at /metrics
	quicConns map[string]*metrics.Counter // accepted QUIC connections by ALPN; static

	tcp   net.Listener
	udp   net.PacketConn
	quicT *quic.Transport
	quicL *quic.Listener
	wt    *webtransport.Server // HTTP/3 and WebTransport on the QUIC listener
	http  *fasthttp.Server
	admin *http.Server
	adml  net.Listener
	conns sync.WaitGroup // HTTP/3 connections being served

	altSvc string // Alt-Svc header advertising HTTP/3; static

	mu       sync.Mutex // guards draining
	draining bool
}

// New binds the relay's listeners. Serve with Run.
func New(cfg Config) (*Relay, error) {
	cfg.setDefaults()
	if cfg.TLS == nil {
		return nil, errors.New("server: no TLS configuration")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.MaxBody > MaxBodyLimit {
		return nil, fmt.Errorf("server: max body %d over the protocol's limit of %d bytes", cfg.MaxBody, MaxBodyLimit)
	}
	if cfg.MaxInflight > 0xffff {
		return nil, fmt.Errorf("server: max in-flight %d over 65535", cfg.MaxInflight)
	}
	r := &Relay{cfg: cfg, log: cfg.Logger, router: router.New(), metrics: metrics.NewSet(), quicConns: make(map[string]*metrics.Counter)}
	r.dev = transport.NewServer(r.router, transport.Config{
		MaxBody:       cfg.MaxBody,
		MaxInflight:   cfg.MaxInflight,
		MaxDevices:    cfg.MaxDevices,
		TakeoverRate:  cfg.TakeoverRate,
		TakeoverBurst: cfg.TakeoverBurst,
		LoginTimeout:  cfg.LoginTimeout,
		IdleTimeout:   cfg.IdleTimeout,
		Logger:        cfg.Logger,
		Metrics:       r.metrics,
	})
	r.hook = webhook.New(r.router, webhook.Config{
		AckTimeout: cfg.AckTimeout,
		MaxBody:    cfg.MaxBody,
		Metrics:    r.metrics,
		TokenRate:  cfg.TokenRate,
		TokenBurst: cfg.TokenBurst,
		IPRate:     cfg.IPRate,
		IPBurst:    cfg.IPBurst,
		MissRate:   cfg.MissRate,
		MissBurst:  cfg.MissBurst,
	})
	for _, alpn := range []string{wire.ALPN, http3.NextProtoH3} {
		r.quicConns[alpn] = r.metrics.NewCounter(`relay_quic_connections_total{alpn="` + alpn + `"}`)
	}

	var err error
	if r.tcp, r.udp, err = listenPair(cfg.Listen); err != nil {
		return nil, err
	}
	r.altSvc = fmt.Sprintf(`h3=":%d"; ma=86400`, r.udp.LocalAddr().(*net.UDPAddr).Port)
	if err := r.listenQUIC(); err != nil {
		r.closeListeners()
		return nil, err
	}
	r.http = &fasthttp.Server{
		Handler:                      r.serveTCP,
		ErrorHandler:                 r.hook.ServeError,
		MaxRequestBodySize:           cfg.MaxBody,
		ReadBufferSize:               cfg.MaxHeaderBytes,
		ReadTimeout:                  cfg.HTTPReadTimeout,
		WriteTimeout:                 cfg.AckTimeout + cfg.HTTPReadTimeout,
		IdleTimeout:                  cfg.HTTPIdleTimeout,
		NoDefaultServerHeader:        true,
		DisablePreParseMultipartForm: true,
		// fasthttp's own log lines name the peer's address; we never log one.
		Logger: discardLogger{},
	}
	if cfg.Admin != "" {
		if r.adml, err = net.Listen("tcp", cfg.Admin); err != nil {
			r.closeListeners()
			return nil, fmt.Errorf("server: admin listen: %w", err)
		}
		r.admin = &http.Server{Handler: r.adminMux(), ReadHeaderTimeout: 5 * time.Second}
	}
	return r, nil
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
func (r *Relay) Addr() net.Addr { return r.tcp.Addr() }

// AdminAddr is the admin listener's address, or nil.
func (r *Relay) AdminAddr() net.Addr {
	if r.adml == nil {
		return nil
	}
	return r.adml.Addr()
}

// Router exposes the node's router (for the cluster backend and tests).
func (r *Relay) Router() *router.Router { return r.router }

// Run serves until ctx ends, then drains: new webhooks get 503, devices are
// sent away with spread-out reconnect delays, in-flight deliveries finish,
// and Run returns within DrainTimeout.
func (r *Relay) Run(ctx context.Context) error {
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
	serve("https", func() error { return r.http.Serve(tls.NewListener(r.tcp, r.httpTLS())) })
	serve("quic", r.acceptQUIC)
	if r.admin != nil {
		serve("admin", func() error {
			if err := r.admin.Serve(r.adml); !errors.Is(err, http.ErrServerClosed) {
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
	r.shutdown()
	wg.Wait()
	return err
}

func (r *Relay) httpTLS() *tls.Config {
	t := r.cfg.TLS.Clone()
	t.NextProtos = []string{"http/1.1"}
	return t
}

// shutdown drains and closes everything, bounded by DrainTimeout.
func (r *Relay) shutdown() {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.DrainTimeout)
	defer cancel()

	r.log.Info("relay draining", "devices", r.router.Len(), "timeout", r.cfg.DrainTimeout)
	r.hook.Drain()
	r.quicL.Close() // no new devices; live sessions go on
	r.dev.Drain(ctx, r.cfg.ReconnectSpread)
	r.http.ShutdownWithContext(ctx)
	r.wt.Close()
	r.quicT.Close() // ends what is left
	r.conns.Wait()
	r.dev.Wait()
	r.closeListeners()
	if r.admin != nil {
		r.admin.Shutdown(ctx)
	}
	r.log.Info("relay stopped")
}

func (r *Relay) closeListeners() {
	if r.quicT != nil {
		r.quicT.Close()
	}
	if r.udp != nil {
		r.udp.Close()
	}
	if r.tcp != nil {
		r.tcp.Close()
	}
	if r.adml != nil {
		r.adml.Close()
	}
}

func (r *Relay) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	// Profiles are for operators: the admin listener is never public.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		r.metrics.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		draining := r.draining
		r.mu.Unlock()
		if draining {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
