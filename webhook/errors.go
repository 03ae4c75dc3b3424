package webhook

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

// Error is an outcome the frontend answers with a fixed status and a JSON
// body {"error": Message, "code": Code}. It is the one place where errors
// become HTTP responses.
type Error struct {
	Status     int
	Code       string // stable, machine-readable
	Message    string // for people
	RetryAfter int    // seconds; 0 means no Retry-After header
	Allow      string // the Allow header of a 405
	body       []byte // rendered once
	idx        int    // position in allErrors, for per-outcome counters
}

// allErrors lists every Error, in creation order; static after init.
var allErrors []*Error

func (e *Error) Error() string { return "webhook: " + e.Message }

func newError(status int, code, msg string, retryAfter int) *Error {
	e := &Error{Status: status, Code: code, Message: msg, RetryAfter: retryAfter, body: render(code, msg), idx: len(allErrors)}
	allErrors = append(allErrors, e)
	return e
}

// render is the JSON of a refusal.
func render(code, msg string) []byte {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}{msg, code})
	return body
}

// modeList names every mode, for the messages that list them.
var modeList = strings.Join(wire.Modes, ", ")

// The frontend's own refusals.
var (
	ErrNotFound      = newError(fasthttp.StatusNotFound, "not_found", "no such endpoint; POST /cloud?mode=MODE&token=TOKEN", 0)
	ErrMethod        = allow(newError(fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use POST; GET only reads: stats, screen, loop, effects, transitions, settings, apps", 0), "POST")
	ErrMethodRead    = allow(newError(fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use GET or POST", 0), "GET, POST")
	ErrModeMissing   = newError(fasthttp.StatusBadRequest, "mode_missing", "mode missing; one of "+modeList, 0)
	ErrModeUnknown   = newError(fasthttp.StatusBadRequest, "bad_mode", "unknown mode; one of "+modeList, 0)
	ErrParam         = newError(fasthttp.StatusBadRequest, "bad_param", "bad query parameter: name belongs to mode=custom", 0)
	ErrTokenMissing  = newError(fasthttp.StatusBadRequest, "token_missing", "token missing; pass ?token= or Authorization: Bearer", 0)
	ErrTokenBad      = newError(fasthttp.StatusBadRequest, "bad_token", "token malformed or too weak: 22-128 random characters of A-Z a-z 0-9 - _", 0)
	ErrTokenConflict = newError(fasthttp.StatusBadRequest, "token_conflict", "query token and Authorization header differ", 0)
	ErrBadJSON       = newError(fasthttp.StatusBadRequest, "bad_json", "body is not valid JSON", 0)
	ErrBadForm       = newError(fasthttp.StatusBadRequest, "bad_form", "form body has a field notify does not take; text, icon, color, duration, repeat, rainbow, hold, sound", 0)
	ErrTooLarge      = newError(fasthttp.StatusRequestEntityTooLarge, "too_large", "body too large", 0)
	ErrHeaderLarge   = newError(fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large", "request headers too large", 0)
	ErrBadRequest    = newError(fasthttp.StatusBadRequest, "bad_request", "malformed HTTP request", 0)
	ErrTimeoutHTTP   = newError(fasthttp.StatusRequestTimeout, "request_timeout", "request not received in time", 0)
	ErrOrigin        = newError(fasthttp.StatusForbidden, "origin_not_allowed", "this page's origin may not connect devices; see --allow-origin", 0)
	ErrDraining      = newError(fasthttp.StatusServiceUnavailable, "draining", "relay is restarting; retry shortly", 5)
	ErrRateLimited   = newError(fasthttp.StatusTooManyRequests, "rate_limited", "too many requests; retry after the seconds in Retry-After", 1)
	ErrInternal      = newError(fasthttp.StatusInternalServerError, "internal", "internal error", 0)
	// ErrCallerGone is the outcome of a webhook whose caller hung up
	// before the device answered; nobody reads the answer, but it is
	// counted. 499 is nginx's "client closed request".
	ErrCallerGone = newError(499, "caller_gone", "the caller hung up before the device answered", 0)
)

// deliveryErrors maps the router's outcomes; the first match wins.
var deliveryErrors = []struct {
	err error
	res *Error
}{
	{router.ErrNoDevice, newError(fasthttp.StatusNotFound, "no_device", "device not connected", 0)},
	{router.ErrBusy, newError(fasthttp.StatusServiceUnavailable, "busy", "device has too many messages in flight", 1)},
	{router.ErrTimeout, newError(fasthttp.StatusGatewayTimeout, "timeout", "device did not answer in time", 0)},
	{router.ErrGone, newError(fasthttp.StatusBadGateway, "device_gone", "device disconnected before answering", 0)},
	{router.ErrBadReply, newError(fasthttp.StatusBadGateway, "bad_reply", "device sent an invalid reply", 0)},
	{router.ErrUnavailable, newError(fasthttp.StatusServiceUnavailable, "cluster_unavailable", "the relay cannot reach its other nodes; retry shortly", 1)},
	{router.ErrOutdated, newError(fasthttp.StatusNotImplemented, "device_outdated", "the device speaks protocol version 1, which cannot carry this webhook's parameters; update the device", 0)},
}

// allow sets a 405's Allow header.
func allow(e *Error, methods string) *Error {
	e.Allow = methods
	return e
}

// detailError is a refusal whose message names what was wrong (the
// parameter, the field): it counts and answers as Err, with Detail as
// the message.
type detailError struct {
	Err    *Error
	Detail string
}

func (e *detailError) Error() string { return "webhook: " + e.Detail }
func (e *detailError) Unwrap() error { return e.Err }

// bodyFor is e's JSON for err: e's own, or with the detail err carries
// (a *detailError is never wrapped, so no reflection on the hot path).
func (e *Error) bodyFor(err error) []byte {
	if d, ok := err.(*detailError); ok && d.Err == e {
		return render(e.Code, d.Detail)
	}
	return e.body
}

// retryError is a refusal whose Retry-After is known only when it happens:
// a rate limit's next token. It answers as Err, from the table (so
// ErrRateLimited counts and renders like any other row), with Retry-After
// set to After in whole seconds; ErrRateLimited's own 1 s is the fallback
// when it is written without one.
type retryError struct {
	Err   *Error
	After time.Duration
}

func (e *retryError) Error() string { return e.Err.Error() }
func (e *retryError) Unwrap() error { return e.Err }

// maxRetryAfter caps a Retry-After: a limit with a tiny rate may name a
// time far off, and one day is as good as "much later".
const maxRetryAfter = 24 * time.Hour

// seconds is After for Retry-After: whole seconds, rounded up, at least 1.
func (e *retryError) seconds() int {
	d := min(e.After, maxRetryAfter)
	return max(int((d+time.Second-1)/time.Second), 1)
}

// respond returns the response for err, or fallback if err is none of
// ours, and its Retry-After in seconds (0: none).
func respond(err error, fallback *Error) (e *Error, retryAfter int) {
	// Unwrapped errors first, without reflection: the answers a flood
	// produces (a miss, a rate limit) then allocate nothing.
	switch x := err.(type) {
	case *retryError:
		return x.Err, x.seconds()
	case *Error:
		return x, x.RetryAfter
	}
	for _, m := range deliveryErrors {
		if err == m.err {
			return m.res, m.res.RetryAfter
		}
	}
	var re *retryError
	if errors.As(err, &re) {
		return re.Err, re.seconds()
	}
	e = errorOr(err, fallback)
	return e, e.RetryAfter
}

// errorFor returns the response for err; unknown errors are internal.
func errorFor(err error) *Error { return errorOr(err, ErrInternal) }

// errorOr returns the response for err, or fallback if err is none of ours.
func errorOr(err error, fallback *Error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range deliveryErrors {
		if errors.Is(err, m.err) {
			return m.res
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge), errors.As(err, &tooLarge):
		return ErrTooLarge
	case isHeaderTooLarge(err):
		return ErrHeaderLarge
	case isTimeout(err):
		return ErrTimeoutHTTP
	}
	return fallback
}

// Refusals are answered and counted here, and only here: every one is a
// relay_webhooks_total{outcome} by its code, whichever path it was on.

// refuse counts err's response, or fallback's if err is none of ours, and
// returns it with its Retry-After.
func (h *Handler) refuse(err error, fallback *Error) (*Error, int) {
	e, retry := respond(err, fallback)
	h.outcomes[e.idx].Inc()
	return e, retry
}

// Refuse answers a request on the TCP frontend with err's response and
// counts it: /cloud's refusals, and the ones of the paths around it
// (ErrNotFound for a path the relay does not serve, ErrOrigin at /connect).
func (h *Handler) Refuse(ctx *fasthttp.RequestCtx, err error) {
	e, retry := h.refuse(err, ErrInternal)
	writeError(ctx, e, retry, err)
}

// ServeError is fasthttp's Server.ErrorHandler: requests that fasthttp
// could not read get the same JSON shape as every other refusal, and count.
func (h *Handler) ServeError(ctx *fasthttp.RequestCtx, err error) {
	e, retry := h.refuse(err, ErrBadRequest)
	writeError(ctx, e, retry, err)
}

// RefuseHTTP is Refuse for a net/http request (HTTP/3).
func (h *Handler) RefuseHTTP(w http.ResponseWriter, err error) {
	e, retry := h.refuse(err, ErrInternal)
	writeHTTPError(w, e, retry, err)
}

// writeHTTPError answers err with e and, if retry > 0, Retry-After: retry.
func writeHTTPError(w http.ResponseWriter, e *Error, retry int, err error) {
	h := w.Header()
	setJSONHTTPHeaders(h)
	if retry > 0 {
		h.Set("Retry-After", strconv.Itoa(retry))
	}
	if e.Allow != "" {
		h.Set("Allow", e.Allow)
	}
	w.WriteHeader(e.Status)
	w.Write(e.bodyFor(err))
}

func setJSONHTTPHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// writeError answers err with e and, if retry > 0, Retry-After: retry.
func writeError(ctx *fasthttp.RequestCtx, e *Error, retry int, err error) {
	ctx.Response.Reset()
	ctx.SetStatusCode(e.Status)
	setJSONHeaders(&ctx.Response.Header)
	if retry > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retry))
	}
	if e.Allow != "" {
		ctx.Response.Header.Set("Allow", e.Allow)
	}
	ctx.SetBody(e.bodyFor(err))
}

func setJSONHeaders(h *fasthttp.ResponseHeader) {
	h.SetContentType("application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

func isHeaderTooLarge(err error) bool {
	var e *fasthttp.ErrSmallBuffer
	return errors.As(err, &e)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
