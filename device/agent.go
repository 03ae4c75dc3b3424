package device

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
)

// TokenStore keeps the device's token across restarts.
type TokenStore interface {
	// Load returns the current token, creating one on first use.
	Load() (string, error)
	Save(token string) error
}

// FileStore keeps the token in a file of mode 0600.
type FileStore struct{ Path string }

// Load reads the token, or creates, saves and returns a new one if the
// file does not exist.
func (f FileStore) Load() (string, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		tok := wire.NewToken()
		return tok, f.Save(tok)
	}
	if err != nil {
		return "", fmt.Errorf("device: token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if err := wire.CheckToken([]byte(tok)); err != nil {
		return "", fmt.Errorf("device: token file %s: %w", f.Path, err)
	}
	return tok, nil
}

// Save replaces the file atomically, so a crash leaves the old token or the
// new one, never half of either.
func (f FileStore) Save(tok string) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), ".token-*")
	if err != nil {
		return fmt.Errorf("device: token file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.WriteString(tok + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.Path)
	}
	if err != nil {
		return fmt.Errorf("device: token file: %w", err)
	}
	return nil
}

// Backoff shapes reconnects: exponential with full jitter (a uniform wait
// in (0, min(Max, Base*2^n)]), reset after a connection that stayed up
// StableAfter. Zero fields take the defaults.
type Backoff struct {
	Base, Max, StableAfter time.Duration
}

// Default backoff.
const (
	DefaultBackoffBase   = 500 * time.Millisecond
	DefaultBackoffMax    = time.Minute
	DefaultBackoffStable = time.Minute
)

func (b Backoff) wait(attempt int) time.Duration {
	base, ceil := b.Base, b.Max
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if ceil <= 0 {
		ceil = DefaultBackoffMax
	}
	d := ceil
	if attempt < 62 && base <= ceil>>attempt { // no overflow: base<<attempt <= ceil
		d = base << attempt
	}
	return rand.N(d) + 1
}

// afterSession decides what follows a session that lasted d and ended with
// err, when attempt reconnects had failed before it: how long to wait, the
// attempt count the next try starts from, and a redirect to dial once.
//
// A GOAWAY is the relay's wait, not ours, and starts the backoff over: the
// relay was fine, just leaving (PROTOCOL §8). Any other end is a failed
// attempt, unless the session lasted StableAfter, which also starts over.
func (b Backoff) afterSession(err error, d time.Duration, attempt int) (wait time.Duration, next int, redirect string) {
	var ga *GoAwayError
	if errors.As(err, &ga) {
		return ga.ReconnectAfter, 0, ga.Redirect
	}
	stable := b.StableAfter
	if stable <= 0 {
		stable = DefaultBackoffStable
	}
	if d >= stable {
		attempt = 0
	}
	return b.wait(attempt), attempt + 1, ""
}

// Agent keeps one device session up: it dials, serves, and reconnects
// forever, and rotates the token on request.
//
// Addr may name several relays, "a.example:8443,b.example:8443", and a name
// may resolve to several addresses: the agent goes round them, one per
// attempt, starting at a random one. On GOAWAY it moves: after the relay's
// delay it logs in on another relay (the GOAWAY's redirect, or the next
// address that is not the one it leaves), and only then leaves the old
// session, whose messages in flight finish: the token is never unknown in
// between (make-before-break, PROTOCOL §6.6).
type Agent struct {
	Addr    string  // relay HOST:PORT; several separated by commas
	Options Options // passed to Dial
	// Auto dials QUIC and, after AutoHeadStart, WebSocket too, and keeps
	// the first to log in (happy eyeballs, RFC 8305's idea): a network
	// that blocks UDP costs a device the head start, not its session. The
	// transport that won is tried first next time. Options.Transport is
	// ignored then.
	Auto          bool
	AutoHeadStart time.Duration // default DefaultAutoHeadStart
	// AutoRetry is how often a session that Auto put on WebSocket tries
	// QUIC again in the background; once QUIC logs in, it takes the token
	// over and the WebSocket session ends after answering what it was
	// sent (PROTOCOL §6.5). Default DefaultAutoRetry.
	AutoRetry time.Duration
	Handler   Handler    // answers messages
	Tokens    TokenStore // the device's token
	Backoff   Backoff
	Logger    *slog.Logger
	// OnSession, if set, is called with each new live connection.
	OnSession func(*Conn)

	lockOnce sync.Once
	lock     chan struct{}  // a mutex Rotate can give up on: held from token load to a live session, and by Rotate
	conn     *Conn          // live connection or nil; guarded by lock
	next     int            // the next address to dial, round the list; guarded by lock
	started  bool           // next was set at random; guarded by lock
	via      transport.Kind // Auto: the transport that won the last race; guarded by lock
	// dialled and dialOpt are what the live session was dialled with (the
	// address, the server name it was verified by); guarded by lock.
	dialled string
	dialOpt Options
}

// Defaults for Auto.
const (
	// DefaultAutoHeadStart is how long QUIC dials alone before WebSocket
	// joins.
	DefaultAutoHeadStart = 300 * time.Millisecond
	// DefaultAutoRetry is how often a WebSocket session tries QUIC again.
	DefaultAutoRetry = 30 * time.Second
)

// acquire takes the agent's lock unless ctx ends first.
func (a *Agent) acquire(ctx context.Context) error {
	a.lockOnce.Do(func() { a.lock = make(chan struct{}, 1) })
	select {
	case a.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Agent) release() { <-a.lock }

func (a *Agent) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

// Run connects and serves until ctx ends. It returns early only for
// refusals that retrying cannot fix (a bad token, an unsupported version).
func (a *Agent) Run(ctx context.Context) error {
	var (
		c        *Conn  // the session to serve; nil: connect first
		attempt  int    // failed attempts since the last good session
		redirect string // a GOAWAY's redirect, for the next dial only
	)
	for {
		if c == nil {
			var err error
			c, err = a.connect(ctx, redirect, nil)
			redirect = ""
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if permanent(err) {
					return err
				}
				wait := a.Backoff.wait(attempt)
				attempt++
				a.log().Warn("relay connection failed", "err", err, "retry_in", wait.Round(time.Millisecond))
				if !sleep(ctx, wait) {
					return nil
				}
				continue
			}
		}
		a.log().Info("connected to relay", "relay", c.RemoteAddr().String(), "max_body", c.Welcome().MaxBody)
		if a.OnSession != nil {
			a.OnSession(c)
		}
		start := time.Now()
		next, err := a.serve(ctx, c)
		if ctx.Err() != nil {
			if next != nil {
				next.Close()
			}
			return nil
		}
		if next != nil {
			a.log().Info("moved to another relay after go-away")
			c, attempt = next, 0
			continue
		}
		c = nil
		var wait time.Duration
		wait, attempt, redirect = a.Backoff.afterSession(err, time.Since(start), attempt)
		var ga *GoAwayError
		if errors.As(err, &ga) {
			// The move failed, and the relay's delay is spent already.
			wait = 0
		}
		a.log().Warn("relay connection ended", "err", err, "retry_in", wait.Round(time.Millisecond))
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// serve answers c's messages until the session ends, and returns why. On
// GOAWAY it moves: it waits the relay's delay, logs in elsewhere, then
// leaves c; next is the new session, or nil if the move did not work (the
// caller then reconnects as after any go-away).
func (a *Agent) serve(ctx context.Context, c *Conn) (next *Conn, err error) {
	served := make(chan error, 1)
	go func() { served <- c.Serve(ctx, a.Handler) }()
	defer a.forget(c)
	var back <-chan *Conn
	if a.Auto && c.Transport() == transport.KindWebSocket {
		var stop func(finishDial bool)
		back, stop = a.backToQUIC(ctx, c)
		defer stop(false)
		select {
		case err := <-served:
			// Replaced by the QUIC session the background dial is making,
			// maybe, before it could be handed over: let that dial finish.
			stop(errors.Is(err, ErrReplaced))
			select {
			case next := <-back:
				a.log().Info("moved back to QUIC: UDP gets through again")
				return next, nil
			default:
				return nil, err
			}
		case next := <-back:
			// next took the token over; c answers what it was sent, then
			// the relay closes it (ErrReplaced, expected).
			<-served
			a.log().Info("moved back to QUIC: UDP gets through again")
			return next, nil
		case <-c.GoingAway():
		}
	} else {
		select {
		case err := <-served:
			return nil, err
		case <-c.GoingAway():
		}
	}
	g := c.GoAway()
	t := time.NewTimer(g.ReconnectAfter)
	select {
	case <-t.C:
	case <-ctx.Done():
	case err = <-served: // the relay closed early; move all the same
		served <- err
	}
	t.Stop()
	var moveErr error
	if ctx.Err() == nil {
		next, moveErr = a.connect(ctx, g.Redirect, c.RemoteAddr())
	}
	c.Leave()
	err = <-served
	if moveErr != nil {
		a.log().Warn("move after go-away failed", "err", moveErr)
	}
	return next, err
}

// backToQUIC tries QUIC every AutoRetry while c, a WebSocket session,
// lives, and yields (once) the QUIC session that took the token over. stop
// ends the tries and returns once none is under way: a dial under way is
// cancelled, or with finishDial let finish; a session made by then is in
// back.
func (a *Agent) backToQUIC(ctx context.Context, c *Conn) (back <-chan *Conn, stop func(finishDial bool)) {
	every := a.AutoRetry
	if every <= 0 {
		every = DefaultAutoRetry
	}
	dialCtx, cancelDial := context.WithCancel(ctx)
	waitCtx, cancelWait := context.WithCancel(dialCtx)
	made := make(chan *Conn, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-waitCtx.Done():
				return
			}
			if a.acquire(ctx) != nil {
				return
			}
			tok, err := a.Tokens.Load()
			current, addr, opt := a.conn == c, a.dialled, a.dialOpt
			a.release()
			if err != nil || !current {
				continue
			}
			opt.Transport = transport.KindQUIC
			next, err := Dial(dialCtx, addr, tok, opt)
			if err != nil {
				continue // UDP is still blocked, or the relay said no: later
			}
			if a.acquire(ctx) != nil {
				next.Close()
				return
			}
			if a.conn != c { // rotated or moved meanwhile: this one is stale
				a.release()
				next.Close()
				continue
			}
			a.conn, a.via = next, transport.KindQUIC
			a.release()
			made <- next
			return
		}
	}()
	var once sync.Once
	return made, func(finishDial bool) {
		once.Do(func() {
			cancelWait()
			if !finishDial {
				cancelDial()
			}
			<-done
			cancelDial()
		})
	}
}

// forget clears c as the agent's live session, unless a move replaced it.
func (a *Agent) forget(c *Conn) {
	if a.acquire(context.Background()) == nil {
		if a.conn == c {
			a.conn = nil
		}
		a.release()
	}
}

// connect loads the token and dials with it, holding the agent's lock so
// that a rotation cannot slip between the two. It dials redirect if set,
// else the next of the agent's addresses, skipping avoid (the relay a
// move leaves) when there is another.
func (a *Agent) connect(ctx context.Context, redirect string, avoid net.Addr) (*Conn, error) {
	if err := a.acquire(ctx); err != nil {
		return nil, err
	}
	defer a.release()
	tok, err := a.Tokens.Load()
	if err != nil {
		return nil, err
	}
	target := relayAddr{addr: redirect}
	if redirect == "" {
		target = a.pick(ctx, avoid)
	}
	opt := a.Options
	opt.MoveFirst = true
	if target.name != "" && (opt.TLS == nil || opt.TLS.ServerName == "") {
		// Dialled by address, verified by the name that resolved to it.
		tc := &tls.Config{}
		if opt.TLS != nil {
			tc = opt.TLS.Clone()
		}
		tc.ServerName = target.name
		opt.TLS = tc
	}
	var c *Conn
	if a.Auto {
		c, err = a.race(ctx, target.addr, tok, opt)
	} else {
		c, err = Dial(ctx, target.addr, tok, opt)
	}
	if err != nil {
		return nil, err
	}
	a.conn, a.dialled, a.dialOpt = c, target.addr, opt
	return c, nil
}

// race dials addr over QUIC and, after the head start (or as soon as QUIC
// fails), over WebSocket, the transport that won last time first. It keeps
// the first session to log in and cancels the other attempt; if that one
// logged in all the same, it has taken the token over from the first, so it
// is the one kept. a.lock is held.
func (a *Agent) race(ctx context.Context, addr, tok string, opt Options) (*Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		c   *Conn
		err error
		via transport.Kind
	}
	results := make(chan result, 2)
	dial := func(via transport.Kind) {
		o := opt
		o.Transport = via
		go func() {
			c, err := Dial(ctx, addr, tok, o)
			results <- result{c, err, via}
		}()
	}
	head := a.AutoHeadStart
	if head <= 0 {
		head = DefaultAutoHeadStart
	}
	first, second := a.via, transport.KindWebSocket
	if first == transport.KindWebSocket {
		second = transport.KindQUIC
	}
	dial(first)
	started := 1
	t := time.NewTimer(head)
	defer t.Stop()
	var errs []error
	for {
		select {
		case <-t.C:
			if started == 1 {
				dial(second)
				started = 2
			}
			continue
		case r := <-results:
			if r.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.via, r.err))
				if started == 1 {
					dial(second)
					started = 2
					continue
				}
				if len(errs) == 2 {
					return nil, errors.Join(errs...)
				}
				continue
			}
			win := r
			if started == 2 && len(errs) == 0 {
				cancel()
				if other := <-results; other.err == nil {
					// It logged in after the winner: it holds the token now.
					win.c.Close()
					win = other
				}
			}
			a.via = win.via
			a.log().Info("transport chosen", "transport", win.via)
			return win.c, nil
		}
	}
}

// relayAddr is one address to dial, and the name it was resolved from.
type relayAddr struct{ addr, name string }

// pick returns the next address to dial, round every address of every
// relay in Addr, skipping avoid when there is another. Names are resolved
// on each call, so that a name whose addresses change is followed.
func (a *Agent) pick(ctx context.Context, avoid net.Addr) relayAddr {
	var all []relayAddr
	for _, relay := range strings.Split(a.Addr, ",") {
		relay = strings.TrimSpace(relay)
		host, port, err := net.SplitHostPort(relay)
		if err != nil || net.ParseIP(host) != nil {
			all = append(all, relayAddr{addr: relay})
			continue
		}
		ips, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil || len(ips) < 2 {
			all = append(all, relayAddr{addr: relay}) // Dial resolves it, or says why not
			continue
		}
		for _, ip := range ips {
			all = append(all, relayAddr{addr: net.JoinHostPort(ip, port), name: host})
		}
	}
	if !a.started {
		// Start at a random relay, as nats.go does with its servers: a
		// fleet with one list does not all land on its first relay, nor
		// all move to the same next one.
		a.next, a.started = rand.IntN(len(all)), true
	}
	for range all {
		r := all[a.next%len(all)]
		a.next++
		if avoid == nil || len(all) == 1 || !sameAddr(r.addr, avoid) {
			return r
		}
	}
	return all[0]
}

// sameAddr reports whether addr (HOST:PORT, HOST an IP or a name) is a.
func sameAddr(addr string, a net.Addr) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return addr == a.String()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.Equal(ua.IP) && port == strconv.Itoa(ua.Port)
}

// Rotate switches the device to a fresh token: over the live session if
// there is one (the old token stops working at once), then in the store. It
// returns the new token.
func (a *Agent) Rotate(ctx context.Context) (string, error) {
	if err := a.acquire(ctx); err != nil {
		return "", err
	}
	defer a.release()
	tok := wire.NewToken()
	if a.conn != nil {
		if err := a.conn.Rotate(ctx, tok); err != nil {
			return "", err
		}
	}
	if err := a.Tokens.Save(tok); err != nil {
		return "", err
	}
	return tok, nil
}

// permanent reports whether retrying cannot help: the relay refused the
// token or the protocol version, or the stored token itself is unusable.
func permanent(err error) bool {
	var re *RefusedError
	return errors.As(err, &re) && re.Permanent() ||
		errors.Is(err, wire.ErrTokenMissing) || errors.Is(err, wire.ErrTokenMalformed) || errors.Is(err, wire.ErrTokenWeak)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
