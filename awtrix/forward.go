package awtrix

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pixelrelay/relay/wire"
)

// DefaultTimeout bounds one call to the clock when New gets no client, and
// when the given client has no timeout and ctx no deadline: a clock that
// hangs must not hold a relay message forever.
const DefaultTimeout = 5 * time.Second

// maxClockReply is how much of a clock's answer is read and passed back.
// AWTRIX replies are a few bytes ("OK") up to a few KiB (stats, settings).
const maxClockReply = 64 << 10

// Forwarder sends relay messages to a clock's local HTTP API. It holds no
// mutable state: one Forwarder serves concurrent messages.
type Forwarder struct {
	base   *url.URL     // static after construction; no query, no fragment
	api    int          // 2 or 3; static after construction
	client *http.Client // static after construction
}

// New returns a Forwarder for the clock at baseURL (http or https, with a
// host; a path prefix is kept, user:password@ becomes Basic auth, which
// AWTRIX 3 can require). api is the clock's API version, 2 or 3. A nil
// client means one with a DefaultTimeout timeout.
func New(baseURL string, api int, client *http.Client) (*Forwarder, error) {
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
	if api != 2 && api != 3 {
		return nil, fmt.Errorf("%w: got %d", ErrBadAPI, api)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	return &Forwarder{base: u, api: api, client: client}, nil
}

// HandleMessage forwards one message and returns the status and JSON reply to
// send back through the relay. It returns when the clock has answered, ctx
// has ended or the client's timeout has passed, whichever comes first. body
// is not kept after HandleMessage returns.
func (f *Forwarder) HandleMessage(ctx context.Context, m wire.Message) (status int, reply []byte) {
	c, err := f.route(m.Mode, m.Body)
	if err != nil {
		return errorReply(err)
	}
	st, b, truncated, err := f.send(ctx, c)
	if err != nil {
		return errorReply(err)
	}
	return okReply(st, b, truncated)
}

// call is one request to the clock.
type call struct {
	path  string     // below the base URL, without a leading slash
	query url.Values // nil: none
	body  []byte     // nil: empty body; owned by the call (see route)
}

// send POSTs c and reads the answer. A non-2xx answer is a *clockError; a
// failure to get any answer wraps errUnreachable.
func (f *Forwarder) send(ctx context.Context, c call) (status int, body []byte, truncated bool, err error) {
	if f.client.Timeout == 0 {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
			defer cancel()
		}
	}
	u := f.base.JoinPath(c.path)
	if c.query != nil {
		u.RawQuery = c.query.Encode()
	}
	var rd io.Reader = http.NoBody
	if c.body != nil {
		rd = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), rd)
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxClockReply+1))
	if err != nil {
		// The clock stopped talking halfway (reset, timeout, ctx).
		return 0, nil, false, fmt.Errorf("%w: reading reply: %w", errUnreachable, err)
	}
	if len(body) > maxClockReply {
		body, truncated = body[:maxClockReply], true
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, nil, false, &clockError{status: resp.StatusCode, body: body, truncated: truncated}
	}
	return resp.StatusCode, body, truncated, nil
}
