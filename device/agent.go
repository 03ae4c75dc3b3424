package device

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

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
type Agent struct {
	Addr    string     // relay HOST:PORT
	Options Options    // passed to Dial
	Handler Handler    // answers messages
	Tokens  TokenStore // the device's token
	Backoff Backoff
	Logger  *slog.Logger
	// OnSession, if set, is called with each new live connection.
	OnSession func(*Conn)

	lockOnce sync.Once
	lock     chan struct{} // a mutex Rotate can give up on: held from token load to a live session, and by Rotate
	conn     *Conn         // live connection or nil; guarded by lock
}

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
	addr, attempt := a.Addr, 0
	for {
		c, err := a.connect(ctx, addr)
		addr = a.Addr // a go-away redirect holds for one dial
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
		a.log().Info("connected to relay", "relay", a.Addr, "max_body", c.Welcome().MaxBody)
		if a.OnSession != nil {
			a.OnSession(c)
		}
		start := time.Now()
		err = c.Serve(ctx, a.Handler)
		if a.acquire(ctx) == nil {
			a.conn = nil
			a.release()
		}
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		var redirect string
		wait, attempt, redirect = a.Backoff.afterSession(err, time.Since(start), attempt)
		if redirect != "" {
			addr = redirect
		}
		a.log().Warn("relay connection ended", "err", err, "retry_in", wait.Round(time.Millisecond))
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// connect loads the token and dials with it, holding the agent's lock so
// that a rotation cannot slip between the two.
func (a *Agent) connect(ctx context.Context, addr string) (*Conn, error) {
	if err := a.acquire(ctx); err != nil {
		return nil, err
	}
	defer a.release()
	tok, err := a.Tokens.Load()
	if err != nil {
		return nil, err
	}
	c, err := Dial(ctx, addr, tok, a.Options)
	if err != nil {
		return nil, err
	}
	a.conn = c
	return c, nil
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
