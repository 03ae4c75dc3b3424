package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"golang.org/x/time/rate"
)

// Config holds the session limits. Zero fields take the defaults below.
type Config struct {
	MaxBody     int // largest message body, announced in Welcome
	MaxInflight int // messages open at once per device; more get router.ErrBusy
	MaxDevices  int // live sessions on this node; more logins get ReasonFull
	// TakeoverRate (per second) and TakeoverBurst bound how often a login
	// may replace a live session with the same token. Past that, the new
	// login is refused (ReasonLimited) and the incumbent stays: two devices
	// with a copied token cannot fight in a reconnect storm. Negative
	// disables the bound.
	TakeoverRate        float64
	TakeoverBurst       int
	LoginTimeout        time.Duration // from connection to a valid Login
	IdleTimeout         time.Duration // the connection's idle timeout, announced in Welcome
	ControlWriteTimeout time.Duration // bound on writing one control frame
	RefuseLinger        time.Duration // how long a refused device may read why before the close
	Logger              *slog.Logger
	// Metrics receives the relay_devices_*, relay_logins_*, takeover,
	// rotation and go-away series; nil keeps them private.
	Metrics *metrics.Set
}

// Defaults.
const (
	DefaultMaxBody      = 64 << 10
	DefaultMaxInflight  = 32
	DefaultLoginTimeout = 10 * time.Second
	DefaultIdleTimeout  = 60 * time.Second
	DefaultMaxDevices   = 100_000
	// One takeover a minute after a burst of three: enough for a device
	// whose old session has not timed out yet to come back at once, a few
	// times over.
	DefaultTakeoverRate  = 1.0 / 60
	DefaultTakeoverBurst = 3
)

func (c *Config) setDefaults() {
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxDevices <= 0 {
		c.MaxDevices = DefaultMaxDevices
	}
	if c.TakeoverRate == 0 {
		c.TakeoverRate = DefaultTakeoverRate
	}
	if c.TakeoverBurst == 0 {
		c.TakeoverBurst = DefaultTakeoverBurst
	}
	if c.LoginTimeout <= 0 {
		c.LoginTimeout = DefaultLoginTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ControlWriteTimeout <= 0 {
		c.ControlWriteTimeout = 2 * time.Second
	}
	if c.RefuseLinger <= 0 {
		c.RefuseLinger = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
}

// Server runs device sessions for every transport and binds them in the
// router.
type Server struct {
	router *router.Router // static
	cfg    Config         // static
	log    *slog.Logger   // static

	draining atomic.Bool
	nextID   atomic.Uint64
	sessions sync.WaitGroup

	// Metrics; static after NewServer.
	connected map[string]*atomic.Int64 // live sessions by transport
	live      atomic.Int64             // live sessions, all transports
	logins    map[string]*metrics.Counter
	refusals  map[wire.Reason]*metrics.Counter
	takeovers *metrics.Counter
	rotations *metrics.Counter
	goAways   *metrics.Counter
	protoErrs *metrics.Counter         // connections closed for breaking the protocol
	clones    *limit.Keyed[router.Key] // takeovers per token
	noLogin   *metrics.Counter         // connections closed for not logging in in time
}

// Transports names the transports sessions come over, for metrics labels.
var Transports = []string{"quic", "webtransport"}

// NewServer returns a Server that registers sessions in r.
func NewServer(r *router.Router, cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{router: r, cfg: cfg, log: cfg.Logger,
		connected: make(map[string]*atomic.Int64),
		logins:    make(map[string]*metrics.Counter),
		refusals:  make(map[wire.Reason]*metrics.Counter),
	}
	m := cfg.Metrics
	for _, t := range Transports {
		n := new(atomic.Int64)
		s.connected[t] = n
		m.NewGauge(`relay_devices_connected{transport="`+t+`"}`, func() float64 { return float64(n.Load()) })
		s.logins[t] = m.NewCounter(`relay_logins_total{transport="` + t + `"}`)
	}
	for r := wire.ReasonVersion; r <= wire.ReasonInternal; r++ {
		s.refusals[r] = m.NewCounter(`relay_login_refusals_total{reason="` + r.String() + `"}`)
	}
	s.takeovers = m.NewCounter("relay_takeovers_total")
	s.rotations = m.NewCounter("relay_rotations_total")
	s.goAways = m.NewCounter("relay_goaways_total")
	s.protoErrs = m.NewCounter("relay_protocol_errors_total")
	s.noLogin = m.NewCounter("relay_login_timeouts_total")
	s.clones = limit.New[router.Key](rate.Limit(max(cfg.TakeoverRate, 0)), max(cfg.TakeoverBurst, 0))
	if cfg.TakeoverRate < 0 || cfg.TakeoverBurst < 0 {
		s.clones = limit.New[router.Key](0, 0)
	}
	return s
}

// Handle runs c's session in its own goroutine. kind names the transport.
func (s *Server) Handle(c Conn, kind string) {
	s.sessions.Add(1)
	go func() {
		defer s.sessions.Done()
		s.Serve(c, kind)
	}()
}

// Serve runs one device connection to its end: login, registration, the
// control loop, and unregistration.
func (s *Server) Serve(c Conn, kind string) {
	sess := &session{srv: s, conn: c, kind: kind, id: s.nextID.Add(1)}
	defer c.Close(wire.CloseNormal, "")

	if !s.login(sess) {
		return
	}
	s.logins[kind].Inc()
	s.connected[kind].Add(1)
	s.log.Debug("device session opened", "session", sess.id, "transport", kind)
	err := s.controlLoop(sess)
	// Free the slot before the router forgets the session, so that anyone
	// who sees the device gone can also log in again.
	s.connected[kind].Add(-1)
	s.live.Add(-1)
	s.router.Unregister(sess.key, sess)
	if err == io.EOF {
		// The device ended its control stream: after a GoAway, once it
		// has answered its messages. Read those answers to the end, then
		// close: a close from the device could overtake its last replies.
		<-sess.settled()
		c.Close(wire.CloseNormal, "")
	}
	s.log.Debug("device session closed", "session", sess.id, "transport", kind, "cause", err)
}

// login reads the Login frame, checks it, registers the session and
// welcomes the device. It reports whether the session is live.
func (s *Server) login(sess *session) bool {
	c := sess.conn
	ctx, cancel := context.WithTimeout(c.Context(), s.cfg.LoginTimeout)
	defer cancel()
	ctrl, err := c.AcceptStream(ctx)
	if err != nil {
		if c.Context().Err() == nil {
			s.noLogin.Inc()
			c.Close(wire.CloseLoginTimeout, "no login in time")
		}
		return false
	}
	sess.ctrl = ctrl
	deadline, _ := ctx.Deadline()
	ctrl.SetReadDeadline(deadline)
	t, p, err := wire.ReadFrame(ctrl, wire.MaxControlPayload)
	if err == nil {
		err = wire.Expect(t, wire.FrameLogin)
	}
	var login wire.Login
	if err == nil {
		login, err = wire.ParseLogin(p)
	}
	if err == io.EOF {
		err = fmt.Errorf("%w: control stream ended before LOGIN", wire.ErrMalformed)
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.noLogin.Inc()
		c.Close(wire.CloseLoginTimeout, "no login in time")
		return false
	case err != nil:
		sess.closeProtocol(err)
		return false
	case login.Version != wire.Version:
		s.refuse(sess, wire.ReasonVersion, "unsupported protocol version")
		return false
	case s.draining.Load():
		s.refuse(sess, wire.ReasonDraining, "relay is draining")
		return false
	}
	if err := wire.CheckToken(login.Token); err != nil {
		s.refuse(sess, wire.ReasonToken, err.Error())
		return false
	}
	sess.key = router.KeyOf(login.Token)
	clear(p) // the token's last copy in relay memory
	// Count the session before it is registered, so that a burst of
	// logins cannot overshoot the cap. A takeover replaces a session that
	// already counts: a device whose old session is not yet timed out can
	// always come back.
	takeover := s.router.Lookup(sess.key) != nil
	if takeover {
		if ok, _ := s.clones.Allow(sess.key, time.Now()); !ok {
			s.refuse(sess, wire.ReasonLimited, "token in use by another live session; taking it over too often")
			return false
		}
	}
	if s.live.Add(1) > int64(s.cfg.MaxDevices) && !takeover {
		s.live.Add(-1)
		s.refuse(sess, wire.ReasonFull, "relay at its device capacity; try later or elsewhere")
		return false
	}
	ctrl.SetReadDeadline(time.Time{})

	s.router.Register(sess.key, sess)
	welcome := wire.Welcome{
		Version:     wire.Version,
		MaxBody:     uint32(s.cfg.MaxBody),
		MaxInflight: uint16(min(s.cfg.MaxInflight, 0xffff)),
		IdleTimeout: s.cfg.IdleTimeout,
	}
	if err := sess.writeCtrl(welcome.Append(nil)); err != nil {
		s.router.Unregister(sess.key, sess)
		s.live.Add(-1)
		return false
	}
	return true
}

// refuse tells the device why it is turned away, gives it RefuseLinger to
// read that and hang up, and closes the connection. The close reason repeats
// the Reason for devices that see the close before the frame.
func (s *Server) refuse(sess *session, r wire.Reason, msg string) {
	s.log.Debug("device login refused", "session", sess.id, "transport", sess.kind, "reason", r)
	s.refusals[r].Inc()
	if sess.writeCtrl(wire.Refuse{Reason: r, Message: msg}.Append(nil)) == nil {
		sess.ctrl.Close()
		t := time.NewTimer(s.cfg.RefuseLinger)
		select {
		case <-sess.conn.Context().Done():
		case <-t.C:
		}
		t.Stop()
	}
	sess.conn.Close(wire.CloseRefused, r.String())
}

// controlLoop serves the device's control frames until the connection ends.
func (s *Server) controlLoop(sess *session) error {
	for {
		t, p, err := wire.ReadFrame(sess.ctrl, wire.MaxControlPayload)
		if err == nil {
			err = wire.Expect(t, wire.FrameRotate)
		}
		var rot wire.Rotate
		if err == nil {
			rot, err = wire.ParseRotate(p)
		}
		if err != nil {
			if isProtocolErr(err) {
				sess.closeProtocol(err)
			}
			return err
		}
		if err := s.rotate(sess, rot.Token); err != nil {
			return err
		}
		clear(p)
	}
}

// rotate rebinds sess to tok and answers the device. An error ends the
// session.
func (s *Server) rotate(sess *session, tok []byte) error {
	if err := wire.CheckToken(tok); err != nil {
		return sess.writeCtrl(wire.Refuse{Reason: wire.ReasonToken, Message: err.Error()}.Append(nil))
	}
	key := router.KeyOf(tok)
	switch err := s.router.Rotate(sess.key, key, sess); {
	case errors.Is(err, router.ErrTokenInUse):
		return sess.writeCtrl(wire.Refuse{Reason: wire.ReasonInUse, Message: "token in use"}.Append(nil))
	case err != nil:
		return err // replaced meanwhile: the connection is closing
	}
	sess.key = key
	s.rotations.Inc()
	s.log.Debug("device token rotated", "session", sess.id, "transport", sess.kind)
	return sess.writeCtrl(wire.AppendRotated(nil))
}

// Drain refuses new logins and sends every device a GoAway with a
// reconnect delay drawn uniformly from [0, spread), so that they do not all
// return at once. Devices finish their messages and hang up; Drain returns
// when all have, or when ctx ends, closing those still connected.
func (s *Server) Drain(ctx context.Context, spread time.Duration) {
	s.draining.Store(true)
	s.router.Each(func(d router.Device) {
		if sess, ok := d.(*session); ok {
			var delay time.Duration
			if spread > 0 {
				delay = rand.N(spread)
			}
			sess.goAway(wire.ReasonDraining, delay)
			s.goAways.Inc()
		}
	})
	for s.router.Len() > 0 {
		select {
		case <-ctx.Done():
			s.router.Each(func(d router.Device) {
				if sess, ok := d.(*session); ok {
					sess.conn.Close(wire.CloseGoingAway, wire.ReasonDraining.String())
				}
			})
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Wait waits for every session started by Handle to end.
func (s *Server) Wait() { s.sessions.Wait() }
