// Package session is the relay's side of the device protocol: it logs
// devices in over any transport.Conn, binds each live session in the
// router, serves rotations, delivers messages on a stream each, and sends
// every device away when the node drains.
//
// The device's side of the same protocol is package device; what both share
// is the wire format (package wire) and the connection adapters (package
// transport). Nothing here is linked into a device.
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pixelrelay/relay/internal/redact"
	"github.com/pixelrelay/relay/internal/setting"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/errgroup"
)

// Config holds the session limits. Start from DefaultConfig: a limit set
// to zero is off (limit.Rate's rule), every timeout must be positive.
type Config struct {
	// MaxBody is the largest message body, announced in WELCOME. A node
	// sets it from its webhook body limit.
	MaxBody int
	// MaxInflight is the messages open at once per device; more get
	// router.ErrBusy. At most 65535 (WELCOME's field).
	MaxInflight int
	// MaxDevices caps live sessions; more logins get relay_full. 0: no cap.
	MaxDevices int
	// Takeovers bounds, per token, how often a login may replace a live
	// session with the same token. Past it, the new login is refused
	// (rate_limited) and the incumbent stays: two devices with a copied
	// token cannot fight in a reconnect storm.
	Takeovers limit.Rate
	// Rotations bounds ROTATEs per session, refused ones included (a
	// device cannot probe tokens faster by failing); past it a ROTATE is
	// refused (rate_limited), takes nothing, and the session keeps its
	// token.
	Rotations limit.Rate
	// LoginTimeout runs from the accepted connection to a valid LOGIN.
	LoginTimeout time.Duration
	// IdleTimeout is the transport's idle timeout, announced in WELCOME.
	// The QUIC listener enforces it; this package only tells devices.
	IdleTimeout time.Duration
	// ControlWriteTimeout bounds writing one control frame, so that a
	// device that stopped reading cannot wedge its session or a drain.
	ControlWriteTimeout time.Duration
	// RefuseLinger is how long a refused device may read why before the
	// relay closes; 0 closes at once.
	RefuseLinger time.Duration
	// Redirect, if set, is the host:port that GOAWAY names on drain.
	Redirect string

	// Logger receives session events, never a token; nil discards.
	Logger *slog.Logger
	// Metrics registers the relay_devices_*, relay_logins_*, takeover,
	// rotation and go-away series; nil keeps them private.
	Metrics prometheus.Registerer
}

// Defaults.
const (
	DefaultMaxBody      = 64 << 10
	DefaultMaxInflight  = 32
	DefaultMaxDevices   = 100_000
	DefaultLoginTimeout = 10 * time.Second
	DefaultIdleTimeout  = 60 * time.Second
)

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		MaxBody:     DefaultMaxBody,
		MaxInflight: DefaultMaxInflight,
		MaxDevices:  DefaultMaxDevices,
		// One takeover a minute after a burst of three: enough for a
		// device whose old session has not timed out yet to come back at
		// once, a few times over.
		Takeovers: limit.Rate{PerSecond: 1.0 / 60, Burst: 3},
		// A person pressing "new token" a few times in a row, then one
		// every ten seconds: a device cannot churn the router in a loop.
		Rotations:           limit.Rate{PerSecond: 1.0 / 10, Burst: 5},
		LoginTimeout:        DefaultLoginTimeout,
		IdleTimeout:         DefaultIdleTimeout,
		ControlWriteTimeout: 2 * time.Second,
		RefuseLinger:        time.Second,
	}
}

// Check reports the first setting that cannot work, as a *setting.Error
// named as cmd/relay's flag.
func (c *Config) Check() error {
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"login-timeout", c.LoginTimeout}, {"idle-timeout", c.IdleTimeout}, {"ControlWriteTimeout", c.ControlWriteTimeout}} {
		if t.d <= 0 {
			return setting.Errorf(t.name, "session: %v: want a positive duration", t.d)
		}
	}
	switch {
	case c.MaxBody <= 0 || c.MaxBody > MaxBodyLimit:
		return setting.Errorf("max-body", "session: %d bytes outside 1..%d", c.MaxBody, MaxBodyLimit)
	case c.MaxInflight <= 0 || c.MaxInflight > 0xffff:
		return setting.Errorf("max-inflight", "session: %d outside 1..65535", c.MaxInflight)
	case c.MaxDevices < 0:
		return setting.Errorf("max-devices", "session: %d: want >= 0 (0: no cap)", c.MaxDevices)
	case c.RefuseLinger < 0:
		return setting.Errorf("RefuseLinger", "session: %v: want >= 0", c.RefuseLinger)
	}
	if err := c.Takeovers.Check(); err != nil {
		return setting.Errorf("takeovers-per-minute", "session: %w", err)
	}
	if err := c.Rotations.Check(); err != nil {
		return setting.Errorf("rotations-per-minute", "session: %w", err)
	}
	if c.Redirect != "" {
		if err := wire.CheckRedirect(c.Redirect); err != nil {
			return setting.Errorf("goaway-redirect", "session: %w", err)
		}
	}
	return nil
}

// MaxBodyLimit is the largest MaxBody a MESSAGE frame can carry.
const MaxBodyLimit = wire.MaxPayload - 1 - wire.MaxModeLen

// Server runs device sessions for every transport and binds them in the
// router.
type Server struct {
	router *router.Router // static
	cfg    Config         // static
	log    *slog.Logger   // static

	nextID   atomic.Uint64
	sessions sync.WaitGroup // goroutines started by Handle

	mu       sync.Mutex // guards the fields below
	draining bool       // Drain began: admit lets no one in
	// live is the one count of live sessions: a session is in it from
	// admit, before its token is bound (a burst of logins cannot overshoot
	// the cap), to leave, before its token is unbound (whoever sees the
	// device gone from the router can also log in again). MaxDevices caps
	// it, relay_devices_connected is its size by transport (byKind), and
	// Drain sends away the sessions in it, then waits for each to end.
	live   map[member]struct{}
	byKind [len(transport.Kinds)]int // live's sessions by transport

	// Metrics; static after New.
	logins     [len(transport.Kinds)]prometheus.Counter
	refusals   map[wire.Reason]prometheus.Counter
	takeovers  prometheus.Counter
	rotations  prometheus.Counter
	rotRefused map[wire.Reason]prometheus.Counter // refused ROTATEs by reason
	goAways    prometheus.Counter
	moves      prometheus.Counter       // sessions that moved to another node after GOAWAY
	protoErrs  prometheus.Counter       // connections closed for breaking the protocol
	noLogin    prometheus.Counter       // connections closed for not logging in in time
	clones     *limit.Keyed[router.Key] // takeovers per token
}

// New returns a Server that registers sessions in r.
func New(r *router.Router, cfg Config) (*Server, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	s := &Server{router: r, cfg: cfg, log: cfg.Logger,
		live:       make(map[member]struct{}),
		refusals:   make(map[wire.Reason]prometheus.Counter),
		rotRefused: make(map[wire.Reason]prometheus.Counter),
		clones:     limit.New[router.Key](cfg.Takeovers),
	}
	m := promauto.With(cfg.Metrics)
	logins := m.NewCounterVec(prometheus.CounterOpts{Name: "relay_logins_total", Help: "Device logins accepted, by transport."}, []string{"transport"})
	for _, k := range transport.Kinds {
		m.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_devices_connected", Help: "Device sessions logged in now, by transport.",
			ConstLabels: prometheus.Labels{"transport": k.String()}}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(s.byKind[k])
		})
		s.logins[k] = logins.WithLabelValues(k.String())
	}
	refusals := m.NewCounterVec(prometheus.CounterOpts{Name: "relay_login_refusals_total", Help: "Device logins refused, by protocol reason."}, []string{"reason"})
	for r := wire.ReasonVersion; r <= wire.ReasonInternal; r++ {
		s.refusals[r] = refusals.WithLabelValues(r.String())
	}
	rotRefused := m.NewCounterVec(prometheus.CounterOpts{Name: "relay_rotation_refusals_total", Help: "Token rotations refused, by protocol reason; the session kept its token."}, []string{"reason"})
	for _, r := range []wire.Reason{wire.ReasonToken, wire.ReasonInUse, wire.ReasonLimited} {
		s.rotRefused[r] = rotRefused.WithLabelValues(r.String())
	}
	counter := func(name, help string) prometheus.Counter {
		return m.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	s.takeovers = counter("relay_takeovers_total", "Device sessions closed because a newer login took their token over.")
	s.rotations = counter("relay_rotations_total", "Token rotations done.")
	s.goAways = counter("relay_goaways_total", "GOAWAYs sent to devices (on drain).")
	s.moves = counter("relay_moves_total", "Sessions sent away whose device logged in on another node before leaving (make-before-break).")
	s.protoErrs = counter("relay_protocol_errors_total", "Device connections closed for breaking the protocol.")
	s.noLogin = counter("relay_login_timeouts_total", "Device connections closed for not logging in within the login timeout.")
	return s, nil
}

// Handle runs c's session in its own goroutine.
func (s *Server) Handle(c transport.Conn) {
	s.sessions.Go(func() { s.Serve(c) })
}

// Serve runs one device connection to its end: login, binding, the
// control loop, and unbinding.
func (s *Server) Serve(c transport.Conn) {
	kind := c.Kind()
	d := &device{core: s.newCore(kind), conn: c}
	defer close(d.ended) // after the close below: Drain waits for it
	defer c.Close(wire.CloseNormal, "")

	if !s.login(d) {
		return
	}
	s.logins[kind].Inc()
	s.log.Debug("device session opened", "session", d.id, "transport", kind, "version", d.version)
	err := s.controlLoop(d)
	// Leave before the router forgets the session, so that anyone who
	// sees the device gone can also log in again.
	s.leave(d)
	s.unbind(&d.core, d)
	if err == io.EOF {
		// The device ended its control stream: after a GOAWAY, once it
		// has answered its messages. Read those answers to the end, then
		// close: a close from the device could overtake its last replies.
		// A drain waits for this too (d.ended).
		<-d.settled()
		c.Close(wire.CloseNormal, "")
	}
	// The cause of a WebSocket session's end is its TCP connection's error,
	// which names the device's address: redacted.
	s.log.Debug("device session closed", "session", d.id, "transport", kind, "cause", redact.Error(err))
}

// unbind unbinds d's token, here and (through the router's mesh) on every
// node, unless a takeover or a move came first.
func (s *Server) unbind(c *core, dev router.Device) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ControlWriteTimeout)
	defer cancel()
	s.router.Unbind(ctx, c.key, dev)
}

// admit counts d in the live sessions, unless the relay is draining
// (ReasonDraining) or at MaxDevices (ReasonFull); it returns 0 when d is
// in, and then leave must follow. A takeover of a live session here is
// exempt from the cap: it replaces a session that already counts, so that
// a device whose old session has not timed out yet can always come back.
// Under one lock with Drain's snapshot: a login is either refused or sent
// away, never missed.
func (s *Server) admit(d member, takeover bool) wire.Reason {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return wire.ReasonDraining
	case s.cfg.MaxDevices > 0 && len(s.live) >= s.cfg.MaxDevices && !takeover:
		return wire.ReasonFull
	}
	s.live[d] = struct{}{}
	s.byKind[d.base().kind]++
	return 0
}

// isDraining reports whether Drain has begun.
func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// leave undoes admit.
func (s *Server) leave(d member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live[d]; ok {
		delete(s.live, d)
		s.byKind[d.base().kind]--
	}
}

// login reads the LOGIN frame, checks it, registers the session and
// welcomes the device. It reports whether the session is live.
func (s *Server) login(d *device) bool {
	c := d.conn
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
	d.ctrl = ctrl
	deadline, _ := ctx.Deadline()
	ctrl.SetReadDeadline(deadline)
	t, p, err := wire.ReadFrame(ctrl, wire.MaxControlPayload)
	defer clear(p) // the token's only copy in relay memory, refused or not
	if err == io.EOF {
		err = fmt.Errorf("%w: control stream ended before LOGIN", wire.ErrMalformed)
	}
	if err == nil {
		err = wire.Expect(t, wire.FrameLogin)
	}
	var login wire.Login
	if err == nil {
		login, err = wire.ParseLogin(p)
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.noLogin.Inc()
		c.Close(wire.CloseLoginTimeout, "no login in time")
		return false
	case err != nil && c.Context().Err() != nil:
		return false // the connection ended; nothing to close or count
	case err != nil:
		// A malformed LOGIN, a control stream the device ended before
		// one, or one it reset (ctrlErr).
		d.closeProtocol(d.ctrlErr(err))
		return false
	}
	// The refusals come in the order PROTOCOL §6.2 gives: the version's
	// here, the others in enter.
	version, ok := wire.Negotiate(login.Version)
	if !ok {
		s.refuse(d, wire.ReasonVersion, fmt.Sprintf("protocol version %d not spoken; this relay speaks %d..%d", login.Version, wire.MinVersion, wire.Version))
		return false
	}
	d.version = version // before enter binds d: Deliver reads it
	if r, msg := s.enter(ctx, d, d, login.Token); r != 0 {
		s.refuse(d, r, msg)
		return false
	}
	ctrl.SetReadDeadline(time.Time{})
	welcome := wire.Welcome{
		Version:     version,
		MaxBody:     uint32(s.cfg.MaxBody),
		MaxInflight: uint16(s.cfg.MaxInflight),
		IdleTimeout: s.cfg.IdleTimeout,
	}
	if err := d.writeCtrl(welcome.Append(nil)); err != nil {
		s.leave(d)
		s.unbind(&d.core, d)
		if transport.ResetByPeer(err) {
			d.closeProtocol(errControlReset)
		}
		return false
	}
	return true
}

// msgDraining is the refusal's text while the relay drains.
const msgDraining = "relay is draining; retry later or elsewhere"

// enter admits m, a session that logged in with tok, and binds dev (m's
// router.Device) to tok: the refusals after the version's, in the order
// PROTOCOL §6.2 gives. It returns 0 once m is live and bound, and then leave
// and unbind must follow; else the Reason and a message for the device.
// admit checks draining again, under the lock Drain takes. tok is not kept.
func (s *Server) enter(ctx context.Context, m member, dev router.Device, tok []byte) (wire.Reason, string) {
	if s.isDraining() {
		return wire.ReasonDraining, msgDraining
	}
	if err := wire.CheckToken(tok); err != nil {
		return wire.ReasonToken, err.Error()
	}
	c := m.base()
	c.key = router.KeyOf(tok)
	takeover := s.router.Lookup(c.key) != nil
	if takeover {
		if ok, _ := s.clones.Allow(c.key, time.Now()); !ok {
			return wire.ReasonLimited, "token in use by another live session; taking it over too often"
		}
	}
	switch s.admit(m, takeover) {
	case wire.ReasonDraining:
		return wire.ReasonDraining, msgDraining
	case wire.ReasonFull:
		return wire.ReasonFull, "relay at its device capacity; try later or elsewhere"
	}
	// In a cluster the router takes the token from any other node first.
	// A session there that was sent away keeps it until the device leaves:
	// both nodes route it for a moment, and no instant has neither.
	claim, err := s.router.Bind(ctx, c.key, dev)
	if err != nil { // router.ErrTakeoverLimited: the incumbent stays
		s.leave(m)
		return wire.ReasonLimited, "token in use by a live session on another node; taking it over too often"
	}
	if claim == router.Taken && !takeover {
		// A session elsewhere (or one that logged in here meanwhile) was
		// taken over: spend this node's budget too, so that a clone fight
		// between nodes is damped as it is on one.
		s.clones.Allow(c.key, time.Now())
	}
	return 0, ""
}

// refuse tells the device why it is turned away, gives it RefuseLinger to
// read that and hang up, and closes the connection. The close reason repeats
// the Reason for devices that see the close before the frame.
func (s *Server) refuse(d *device, r wire.Reason, msg string) {
	s.log.Debug("device login refused", "session", d.id, "transport", d.kind, "reason", r)
	s.refusals[r].Inc()
	if d.writeCtrl(wire.Refuse{Reason: r, Message: msg}.Append(nil)) == nil && s.cfg.RefuseLinger > 0 {
		d.ctrl.Close()
		t := time.NewTimer(s.cfg.RefuseLinger)
		select {
		case <-d.conn.Context().Done():
		case <-t.C:
		}
		t.Stop()
	}
	d.conn.Close(wire.CloseRefused, r.String())
}

// controlLoop serves the device's control frames until the connection ends.
func (s *Server) controlLoop(d *device) error {
	var rotations *limit.Bucket // made on the first ROTATE: most sessions never rotate
	for {
		t, p, err := wire.ReadFrame(d.ctrl, wire.MaxControlPayload)
		if err == nil {
			err = wire.Expect(t, wire.FrameRotate)
		}
		var rot wire.Rotate
		if err == nil {
			rot, err = wire.ParseRotate(p)
		}
		if err != nil {
			if isProtocolErr(err) || transport.ResetByPeer(err) {
				d.closeProtocol(d.ctrlErr(err))
			}
			return err
		}
		if rotations == nil {
			rotations = limit.NewBucket(s.cfg.Rotations)
		}
		if !rotations.Allow(time.Now()) {
			s.log.Debug("device rotation refused: too many", "session", d.id, "transport", d.kind)
			err = s.refuseRotation(d, wire.ReasonLimited, "too many rotations; try again later")
		} else {
			err = s.rotate(d, rot.Token)
		}
		clear(p)
		if err != nil {
			if transport.ResetByPeer(err) {
				d.closeProtocol(errControlReset) // the answer's write found the stream reset
			}
			return err
		}
	}
}

// rotate rebinds d to tok and answers the device. An error ends the
// session.
func (s *Server) rotate(d *device, tok []byte) error {
	if err := wire.CheckToken(tok); err != nil {
		return s.refuseRotation(d, wire.ReasonToken, err.Error())
	}
	key := router.KeyOf(tok)
	ctx, cancel := context.WithTimeout(d.conn.Context(), s.cfg.ControlWriteTimeout)
	defer cancel()
	// In a cluster the new token reaches this node from everywhere, and
	// the old one from nowhere, before Rotate returns and ROTATED says so.
	switch err := s.router.Rotate(ctx, d.key, key, d); {
	case errors.Is(err, router.ErrTokenInUse):
		return s.refuseRotation(d, wire.ReasonInUse, "token in use")
	case err != nil:
		return err // replaced meanwhile: the connection is closing
	}
	d.key = key
	s.rotations.Inc()
	s.log.Debug("device token rotated", "session", d.id, "transport", d.kind)
	return d.writeCtrl(wire.AppendRotated(nil))
}

// refuseRotation answers a ROTATE with REFUSE; the session keeps its token.
func (s *Server) refuseRotation(d *device, r wire.Reason, msg string) error {
	s.rotRefused[r].Inc()
	return d.writeCtrl(wire.Refuse{Reason: r, Message: msg}.Append(nil))
}

// goAwayWorkers bounds the GOAWAY writes of a drain in flight at once: each
// is a few bytes into a stream buffer, unless a device stopped reading.
const goAwayWorkers = 64

// Drain refuses new logins and sends every device a GOAWAY with a
// reconnect delay drawn uniformly from [0, spread), so that they do not all
// return at once. Devices finish their messages and hang up. Drain returns
// once every session has ended; when ctx ends first, it closes the
// sessions still open with 0x4 and returns once they are gone.
func (s *Server) Drain(ctx context.Context, spread time.Duration) {
	s.mu.Lock()
	s.draining = true
	live := make([]member, 0, len(s.live))
	for d := range s.live {
		live = append(live, d)
	}
	s.mu.Unlock()

	s.log.Info("sending devices away", "devices", len(live), "spread", spread)
	var g errgroup.Group
	g.SetLimit(goAwayWorkers)
	for _, d := range live {
		if ctx.Err() != nil {
			break
		}
		var delay time.Duration
		if spread > 0 {
			delay = rand.N(spread)
		}
		g.Go(func() error {
			d.goAway(ctx, wire.ReasonDraining, delay, s.cfg.Redirect)
			s.goAways.Inc()
			return nil
		})
	}
	g.Wait()

	// Each session ends once it has left live and read its last replies
	// (Serve); none can be admitted now, so these are all there are.
	if allEnded(ctx, live) {
		return
	}
	left := slices.DeleteFunc(live, func(m member) bool { return m.base().hasEnded() })
	s.log.Info("drain timeout: closing devices still connected", "devices", len(left))
	for _, d := range left {
		d.closeGoingAway()
	}
	allEnded(context.Background(), left)
}

// allEnded waits until every session of ds has ended, or ctx ends first,
// and says which.
func allEnded(ctx context.Context, ds []member) bool {
	for _, d := range ds {
		select {
		case <-d.base().ended:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// Len returns the number of live sessions (the count MaxDevices caps).
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// Wait waits for every session started by Handle to end.
func (s *Server) Wait() { s.sessions.Wait() }
