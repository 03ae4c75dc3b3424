package awtrix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pixelrelay/relay/wire"
)

// DefaultTimeout bounds the clock's part of one message when Options say
// nothing: below the relay's default 5 s wait, so that a slow clock is
// reported as clock_timeout by the agent rather than as the relay's 504.
const DefaultTimeout = 3 * time.Second

// maxClockReply is how much of a clock's answer is read and passed back.
// AWTRIX replies are a few bytes ("OK") up to a few KiB (stats, settings,
// the screen: 256 colors).
const maxClockReply = 64 << 10

// The API versions Options.API names.
const (
	APIAuto = 0 // ask the clock, once, at the first message
	API2    = 2 // the AWTRIX 2 host (Java, port 7000, /api/v3/...)
	API3    = 3 // the AWTRIX 3 firmware (/api/...)
)

// Options configure a Forwarder.
type Options struct {
	// API is the clock's API: API2, API3, or APIAuto to detect it.
	API int
	// Timeout bounds the clock's part of one message, all its calls
	// together; the message's own deadline (the relay's wait) bounds it
	// too. 0 is DefaultTimeout.
	Timeout time.Duration
	// AllowDestructive lets the modes erase, resetSettings and doupdate
	// through; without it they are refused (403 forbidden).
	AllowDestructive bool
	// Client makes the calls; nil is a client of its own.
	Client *http.Client
	// Logger gets one line per clock failure and the detected API; nil
	// discards. It never gets a message body or a token.
	Logger *slog.Logger
}

// Forwarder sends relay messages to a clock's local HTTP API. One
// Forwarder serves concurrent messages.
type Forwarder struct {
	base   *url.URL      // static; no query, fragment or user info
	user   *url.Userinfo // static; Basic auth, which AWTRIX 3 can require
	opt    Options       // static
	api    atomic.Int32  // API2 or API3 once known
	client *http.Client  // static
	log    *slog.Logger  // static
}

// New returns a Forwarder for the clock at baseURL (http or https, with a
// host; a path prefix is kept, user:password@ becomes Basic auth).
func New(baseURL string, opt Options) (*Forwarder, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme %q", ErrBadURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host in %q", ErrBadURL, u.Redacted())
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("%w: query or fragment in %q", ErrBadURL, u.Redacted())
	}
	if opt.API != APIAuto && opt.API != API2 && opt.API != API3 {
		return nil, fmt.Errorf("%w: got %d", ErrBadAPI, opt.API)
	}
	if opt.Timeout < 0 {
		return nil, fmt.Errorf("awtrix: negative timeout %v", opt.Timeout)
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	f := &Forwarder{opt: opt, user: u.User, client: opt.Client, log: opt.Logger}
	u.User = nil // kept apart, so that no error message carries the password
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	f.base = u
	if f.client == nil {
		f.client = &http.Client{}
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.api.Store(int32(opt.API))
	return f, nil
}

// HandleMessage forwards one message and returns the status and JSON reply
// to send back through the relay: the clock's own JSON for a read, else
// {"ok":true,...} or an error (errors.go). It returns within Timeout and
// ctx's deadline. m.Body is not kept after it returns.
func (f *Forwarder) HandleMessage(ctx context.Context, m wire.Message) (status int, reply []byte) {
	ctx, cancel := context.WithTimeout(ctx, f.opt.Timeout)
	defer cancel()
	calls, err := f.plan(ctx, m)
	if err != nil {
		return errorReply(err)
	}
	var c call
	var body []byte
	var truncated bool
	for _, c = range calls {
		if status, body, truncated, err = f.send(ctx, c); err != nil {
			return errorReply(err)
		}
	}
	if c.read && !truncated && len(body) > 0 && isJSON(body) {
		return status, body // a read's answer is the clock's JSON
	}
	return okReply(status, body, truncated)
}

// plan is the calls m takes, in order; the answer is the last one's.
func (f *Forwarder) plan(ctx context.Context, m wire.Message) ([]call, error) {
	if !wire.ValidMode([]byte(m.Mode)) {
		return nil, badRequest("unknown mode %q", truncate(m.Mode, 32))
	}
	api, err := f.apiOf(ctx)
	if err != nil {
		return nil, err
	}
	if api == API2 {
		c, err := route2(m)
		return []call{c}, err
	}
	return f.route3(ctx, m)
}

// apiOf is the clock's API, detected at the first message when Options
// did not say.
func (f *Forwarder) apiOf(ctx context.Context) (int, error) {
	if v := int(f.api.Load()); v != APIAuto {
		return v, nil
	}
	v, err := f.detect(ctx)
	if err != nil {
		return 0, err
	}
	if f.api.CompareAndSwap(APIAuto, int32(v)) {
		f.log.Info("clock API detected", "api", v, "clock", f.base.Redacted())
	}
	return v, nil
}

// detect asks the clock which API it speaks: AWTRIX 3 answers GET
// /api/stats with a JSON object, the AWTRIX 2 host answers POST
// /api/v3/basics {"get":"version"}.
func (f *Forwarder) detect(ctx context.Context) (int, error) {
	st, body, _, err := f.send(ctx, call{method: http.MethodGet, path: "api/stats", read: true})
	if err == nil && st == http.StatusOK && isObject(body) {
		return API3, nil
	}
	if errors.Is(err, errUnreachable) || errors.Is(err, errClockTimeout) {
		return 0, err
	}
	if _, _, _, err := f.send(ctx, call{method: http.MethodPost, path: "api/v3/basics", body: []byte(`{"get":"version"}`)}); err == nil {
		return API2, nil
	}
	f.log.Warn("clock API not recognized", "clock", f.base.Redacted())
	return 0, errUnknownClock
}

// call is one request to the clock.
type call struct {
	method string     // GET or POST
	path   string     // below the base URL, without a leading slash
	query  url.Values // nil: none
	body   []byte     // nil: an empty body; owned by the call (see route3)
	text   bool       // body is plain text (RTTTL, R2D2), not JSON
	read   bool       // the answer is the clock's JSON, passed back as it is
}

// send makes c and reads the answer. A non-2xx answer is a *clockError; no
// answer wraps errUnreachable, or errClockTimeout when time ran out.
func (f *Forwarder) send(ctx context.Context, c call) (status int, body []byte, truncated bool, err error) {
	u := f.base.JoinPath(c.path)
	if c.query != nil {
		u.RawQuery = c.query.Encode()
	}
	var rd io.Reader = http.NoBody
	if c.body != nil {
		rd = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u.String(), rd)
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	if f.user != nil {
		pw, _ := f.user.Password()
		req.SetBasicAuth(f.user.Username(), pw)
	}
	switch {
	case c.body != nil && c.text:
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	case c.body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, false, f.failed(ctx, c, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxClockReply+1))
	if err != nil {
		// The clock stopped talking halfway (reset, timeout, ctx).
		return 0, nil, false, f.failed(ctx, c, fmt.Errorf("reading the answer: %w", err))
	}
	if len(body) > maxClockReply {
		body, truncated = body[:maxClockReply], true
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		f.log.Warn("clock answered with an error", "call", c.method+" /"+c.path, "status", resp.StatusCode)
		return 0, nil, false, &clockError{status: resp.StatusCode, body: body, truncated: truncated}
	}
	return resp.StatusCode, body, truncated, nil
}

// failed logs a call that got no answer and classifies it.
func (f *Forwarder) failed(ctx context.Context, c call, err error) error {
	kind := errUnreachable
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		kind = errClockTimeout
	}
	f.log.Warn("clock call failed", "call", c.method+" /"+c.path, "kind", kind.Error(), "err", err)
	return fmt.Errorf("%w: %w", kind, err)
}
