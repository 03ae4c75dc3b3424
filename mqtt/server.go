package mqtt

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pixelrelay/relay/internal/setting"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/session"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// AckMode is what an AWTRIX 3 clock's webhook waits for: the firmware
// acknowledges nothing over MQTT.
type AckMode uint8

const (
	// AckScreen sends sendscreen after the command and answers once the
	// clock's screen comes: the clock handles its messages in order, so
	// the screen confirms that it has taken the command.
	AckScreen AckMode = iota
	// AckSent answers once the command is written to the connection.
	AckSent
)

func (a AckMode) String() string {
	if a == AckSent {
		return "sent"
	}
	return "screen"
}

// MarshalText and UnmarshalText make an AckMode a flag.
func (a AckMode) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

func (a *AckMode) UnmarshalText(b []byte) error {
	switch string(b) {
	case "screen":
		*a = AckScreen
	case "sent":
		*a = AckSent
	default:
		return fmt.Errorf("%q: want screen or sent", b)
	}
	return nil
}

// Config holds the MQTT listener's limits. Start from DefaultConfig; a
// rate set to zero is off (limit.Rate's rule), every other limit must be
// positive.
type Config struct {
	// MaxPacket bounds a packet from a clock, after its fixed header;
	// a larger one closes the connection. What the relay sends a clock is
	// bounded by the firmware's buffer instead (awtrix.MaxClockPacket).
	MaxPacket int
	// ConnectTimeout runs from the accepted connection to its CONNECT
	// (and, over TLS, includes the handshake).
	ConnectTimeout time.Duration
	// MaxKeepAlive holds a clock's keep-alive: one that asks for none (0)
	// or a longer one is closed after 1.5 x MaxKeepAlive of silence.
	MaxKeepAlive time.Duration
	// WriteTimeout bounds every write to a clock: one that takes no data
	// for this long is closed.
	WriteTimeout time.Duration
	// AckTimeout bounds the wait for a clock's confirmation (a screen, an
	// NG result, a first stats publish); the webhook's own deadline may
	// end it sooner.
	AckTimeout time.Duration
	// Ack is what an AWTRIX 3 clock's webhook waits for.
	Ack AckMode
	// AllowDisruptive lets webhooks reboot, sleep, update, reset or
	// reconfigure a clock over MQTT (awtrix.Command.Disruptive), whose last
	// hop anyone on the path can read and forge when it is plain TCP;
	// refused with 403 otherwise.
	AllowDisruptive bool
	// MaxConns caps the MQTT connections open at once, logged in or not;
	// more get CONNACK "server unavailable". The node's --max-devices caps
	// the live sessions of every transport together.
	MaxConns int
	// ConnectsPerSource bounds the connections one source (an IPv4
	// address, an IPv6 /64) may open; past it a connection is closed
	// before its CONNECT is read.
	ConnectsPerSource limit.Rate
	// Pings bounds one connection's PINGREQs; past it the connection is
	// closed.
	Pings limit.Rate

	// Logger receives connection events, never a token, a user name, a
	// payload or an address; nil discards.
	Logger *slog.Logger
	// Metrics registers the relay_mqtt_* series; nil keeps them private.
	Metrics prometheus.Registerer
}

// Defaults.
const (
	DefaultMaxPacket      = 16 << 10 // a clock's stats and screen are 1-3 KB
	DefaultConnectTimeout = 5 * time.Second
	DefaultMaxKeepAlive   = 5 * time.Minute
	DefaultWriteTimeout   = 10 * time.Second
	DefaultAckTimeout     = 3 * time.Second
	DefaultMaxConns       = 100_000
)

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		MaxPacket:      DefaultMaxPacket,
		ConnectTimeout: DefaultConnectTimeout,
		MaxKeepAlive:   DefaultMaxKeepAlive,
		WriteTimeout:   DefaultWriteTimeout,
		AckTimeout:     DefaultAckTimeout,
		MaxConns:       DefaultMaxConns,
		// A NAT full of clocks coming back after an outage, each retrying
		// every 5 s: as the QUIC handshakes' per-source limit.
		ConnectsPerSource: limit.Rate{PerSecond: 50, Burst: 200},
		// PubSubClient pings every 15 s; ten at once and one a second is
		// far above any client and far below a flood.
		Pings: limit.Rate{PerSecond: 1, Burst: 10},
	}
}

// Check reports the first setting that cannot work, named as cmd/relay's
// flag.
func (c *Config) Check() error {
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"mqtt-connect-timeout", c.ConnectTimeout}, {"mqtt-max-keepalive", c.MaxKeepAlive}, {"mqtt-write-timeout", c.WriteTimeout}, {"mqtt-ack-timeout", c.AckTimeout}} {
		if t.d <= 0 {
			return setting.Errorf(t.name, "mqtt: %v: want a positive duration", t.d)
		}
	}
	switch {
	case c.MaxPacket < 64 || c.MaxPacket > maxRemaining:
		return setting.Errorf("mqtt-max-packet", "mqtt: %d bytes outside 64..%d", c.MaxPacket, maxRemaining)
	case c.MaxConns <= 0:
		return setting.Errorf("mqtt-max-conns", "mqtt: %d: want a positive count", c.MaxConns)
	case c.Ack > AckSent:
		return setting.Errorf("mqtt-ack", "mqtt: ack mode %d: want screen or sent", c.Ack)
	}
	if err := c.ConnectsPerSource.Check(); err != nil {
		return setting.Errorf("mqtt-connect-ip-rate", "mqtt: %w", err)
	}
	if err := c.Pings.Check(); err != nil {
		return setting.Errorf("mqtt-ping-rate", "mqtt: %w", err)
	}
	return nil
}

// maxRemaining is the largest remaining length MQTT can encode (§2.2.3).
const maxRemaining = 268_435_455

// Server accepts stock clocks' MQTT connections and runs each as a device
// session of a session.Server.
type Server struct {
	sess *session.Server // static
	cfg  Config          // static
	log  *slog.Logger    // static

	perSource *limit.Keyed[netip.Addr]

	mu        sync.Mutex // guards the fields below
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}

	wg sync.WaitGroup // connection goroutines

	m metrics
}

// metrics are static after New.
type metrics struct {
	accepted map[string]prometheus.Counter // by path
	refused  map[byte]prometheus.Counter   // CONNACK refusals by return code
	closed   map[string]prometheus.Counter // connections closed by the relay, by reason
	dropped  map[string]prometheus.Counter // clock publishes dropped, by reason
	acks     map[string]prometheus.Counter // webhook outcomes, by what confirmed them
	connack  prometheus.Histogram          // accept to CONNACK
}

// Reasons of relay_mqtt_closed_total.
const (
	closeProtocol       = "protocol_error"  // a malformed or misplaced packet, QoS 2, a second CONNECT
	closeTooLarge       = "too_large"       // a packet over --mqtt-max-packet
	closeConnectTimeout = "connect_timeout" // no CONNECT in time
	closeKeepAlive      = "keepalive"       // silent for 1.5 x keep-alive
	closePingFlood      = "ping_flood"      // PINGREQs over --mqtt-ping-rate
	closeWriteTimeout   = "write_timeout"   // the clock took no data for --mqtt-write-timeout
	closeSourceLimit    = "source_limit"    // connections from one source over --mqtt-connect-ip-rate
	closeReplaced       = "replaced"        // a newer login took the token over
	closeDrain          = "drain"           // the relay is draining: the clock's turn to leave came
)

// Reasons of relay_mqtt_dropped_total.
const (
	dropTopic  = "topic"   // a publish outside the topics a clock may publish
	dropUnread = "unasked" // a confirmation nobody waits for any more (its webhook ended)
)

// New returns a Server that logs clocks in through sess.
func New(sess *session.Server, cfg Config) (*Server, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	s := &Server{sess: sess, cfg: cfg, log: cfg.Logger,
		perSource: limit.New[netip.Addr](cfg.ConnectsPerSource),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
	m := promauto.With(cfg.Metrics)
	vec := func(name, help, label string, values ...string) map[string]prometheus.Counter {
		v := m.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
		out := make(map[string]prometheus.Counter, len(values))
		for _, x := range values {
			out[x] = v.WithLabelValues(x)
		}
		return out
	}
	s.m.accepted = vec("relay_mqtt_connections_total", "MQTT connections accepted, by path: mqtt-plain (TCP) or mqtt-tls.", "path",
		router.PathMQTTPlain, router.PathMQTTTLS)
	s.m.closed = vec("relay_mqtt_closed_total", "MQTT connections the relay closed, by reason: protocol_error, too_large, connect_timeout, keepalive, ping_flood, write_timeout, source_limit, replaced, drain.", "reason",
		closeProtocol, closeTooLarge, closeConnectTimeout, closeKeepAlive, closePingFlood, closeWriteTimeout, closeSourceLimit, closeReplaced, closeDrain)
	s.m.dropped = vec("relay_mqtt_dropped_total", "Publishes from clocks the relay dropped, by reason: topic (outside what a clock may publish: its stats, screen, state and NG results), unasked (a confirmation whose webhook had ended).", "reason",
		dropTopic, dropUnread)
	s.m.acks = vec("relay_mqtt_webhooks_total", "Webhooks to MQTT clocks by outcome: screen, result (confirmed by the clock), sent (written, --mqtt-ack sent), state (answered from the clock's latest publish), timeout (no confirmation in time), refused (the NG clock answered an error), rejected (not sent: no topic, not allowed, too large, not subscribed).", "outcome",
		ackScreen, ackResult, ackSent, ackState, ackTimeout, ackRefused, ackRejected)
	codes := m.NewCounterVec(prometheus.CounterOpts{Name: "relay_mqtt_connect_refusals_total", Help: "CONNECTs refused with a CONNACK, by MQTT 3.1.1 return code: 1 protocol level, 2 client id, 3 server unavailable (draining, full, limited), 4 bad user name or password (the token)."}, []string{"code"})
	s.m.refused = make(map[byte]prometheus.Counter)
	for c := byte(1); c <= 5; c++ {
		s.m.refused[c] = codes.WithLabelValues(fmt.Sprint(c))
	}
	s.m.connack = m.NewHistogram(prometheus.HistogramOpts{Name: "relay_mqtt_connack_seconds",
		Help:    "From an accepted MQTT connection to its CONNACK: a stock clock blocks while it waits.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}})
	return s, nil
}

// Serve accepts clocks on l until l is closed or Close is called. path is
// router.PathMQTTPlain for plain TCP, router.PathMQTTTLS for a TLS
// listener: every webhook answer for these clocks names it.
func (s *Server) Serve(l net.Listener, path string) error {
	if path != router.PathMQTTPlain && path != router.PathMQTTTLS {
		return fmt.Errorf("mqtt: path %q: want %s or %s", path, router.PathMQTTPlain, router.PathMQTTTLS)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return net.ErrClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration // net/http's backoff on temporary accept errors
	for {
		nc, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.m.accepted[path].Inc()
		s.start(nc, path)
	}
}

// ServeConn runs one connection accepted elsewhere (the relay's HTTPS port
// hands over the ones that start with a CONNECT), as Serve would.
func (s *Server) ServeConn(nc net.Conn, path string) {
	s.m.accepted[path].Inc()
	s.start(nc, path)
}

// start runs nc's connection in its own goroutine. The source's rate is
// checked there: behind a balancer, RemoteAddr reads the PROXY header,
// which must not hold the accept loop.
func (s *Server) start(nc net.Conn, path string) {
	c := newConn(s, nc, path, time.Now())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	full := len(s.conns) >= s.cfg.MaxConns
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if s.overRate(nc) {
			s.m.closed[closeSourceLimit].Inc()
			nc.Close()
		} else {
			c.serve(full)
		}
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// overRate reports whether nc's source has opened connections faster than
// ConnectsPerSource. A source that cannot be read (a net.Pipe, a PROXY
// header that did not come) shares the zero address's bucket.
func (s *Server) overRate(nc net.Conn) bool {
	if s.perSource.Unlimited() {
		return false
	}
	var src netip.Addr
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		src = limit.Source(ap.Addr())
	}
	ok, _ := s.perSource.Allow(src, time.Now())
	return !ok
}

// Close stops every listener and closes every connection, logged in or
// not, and waits for them to end. A drain comes first (session.Server's
// Drain sends the logged-in clocks away, spread out); Close ends what is
// left.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Len returns the connections open now, logged in or not.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
