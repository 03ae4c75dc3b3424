// Package httperr is the relay's one table from error to HTTP response:
// every refusal, of a webhook or of any other request the relay's HTTP
// side answers, is an Error with a status, a stable code and a message,
// answered with the same JSON body {"error": Message, "code": Code} (ntfy's
// errHTTP is the model). The router's delivery outcomes have their rows
// here too (delivery.go), under the outcome's own code, so that a code
// means one thing in HTTP, on the cluster's bus and in the metrics.
//
// A Refuser writes these responses, with fasthttp or net/http, and counts
// each by its code.
package httperr

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/pixelrelay/relay/router"
	"github.com/valyala/fasthttp"
)

// Error is an outcome the relay answers with a fixed status and a JSON body
// {"error": Message, "code": Code}.
type Error struct {
	Status     int
	Code       string // stable, machine-readable
	Message    string // for people
	RetryAfter int    // seconds; 0 means no Retry-After header
	Allow      string // the Allow header of a 405
	body       []byte // rendered once
	idx        int    // position in all, for per-code counters
}

// all lists every Error, in creation order; static after init. Create
// Errors at package initialization only: a Refuser counts those it has
// seen when it is made.
var all []*Error

func (e *Error) Error() string { return "httperr: " + e.Message }

// New returns a refusal with status, code and message; retryAfter, if
// positive, is its Retry-After in seconds.
func New(status int, code, msg string, retryAfter int) *Error {
	e := &Error{Status: status, Code: code, Message: msg, RetryAfter: retryAfter, body: render(code, msg), idx: len(all)}
	all = append(all, e)
	return e
}

// WithAllow sets a 405's Allow header and returns e.
func (e *Error) WithAllow(methods string) *Error {
	e.Allow = methods
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

// The refusals of the relay's HTTP side that are not a webhook's own.
var (
	NotFound         = New(http.StatusNotFound, "not_found", "no such endpoint; POST /cloud?mode=MODE&token=TOKEN", 0)
	BadRequest       = New(http.StatusBadRequest, "bad_request", "malformed HTTP request", 0)
	TooLarge         = New(http.StatusRequestEntityTooLarge, "too_large", "body too large", 0)
	HeaderTooLarge   = New(http.StatusRequestHeaderFieldsTooLarge, "header_too_large", "request headers too large", 0)
	RequestTimeout   = New(http.StatusRequestTimeout, "request_timeout", "request not received in time", 0)
	OriginNotAllowed = New(http.StatusForbidden, "origin_not_allowed", "this page's origin may not connect devices; see --allow-origin", 0)
	Internal         = New(http.StatusInternalServerError, "internal", "internal error", 0)
)

// Detailed is e with msg, which names what was wrong (the parameter, the
// field), for its message: it counts and answers as e.
func Detailed(e *Error, msg string) error { return &detailError{e, msg} }

type detailError struct {
	Err    *Error
	Detail string
}

func (e *detailError) Error() string { return "httperr: " + e.Detail }
func (e *detailError) Unwrap() error { return e.Err }

// bodyFor is e's JSON for err: e's own, or with the detail err carries
// (a *detailError is never wrapped, so no reflection on the hot path).
func (e *Error) bodyFor(err error) []byte {
	if d, ok := err.(*detailError); ok && d.Err == e {
		return render(e.Code, d.Detail)
	}
	return e.body
}

// RetryIn is e with a Retry-After known only when it happens (a rate
// limit's next token): it answers and counts as e, with Retry-After set to
// after in whole seconds, rounded up, at least 1 and at most a day; e's own
// Retry-After is the fallback when e is written without RetryIn.
func RetryIn(e *Error, after time.Duration) error { return &retryError{e, after} }

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

// Respond returns the response for err, or fallback if err is none of
// ours, and its Retry-After in seconds (0: none).
func Respond(err error, fallback *Error) (e *Error, retryAfter int) {
	// Unwrapped errors first, without reflection: the answers a flood
	// produces (a miss, a rate limit) then allocate nothing.
	switch x := err.(type) {
	case *retryError:
		return x.Err, x.seconds()
	case *Error:
		return x, x.RetryAfter
	case *router.Outcome:
		if e := delivery(x); e != nil {
			return e, e.RetryAfter
		}
	}
	var re *retryError
	if errors.As(err, &re) {
		return re.Err, re.seconds()
	}
	e = errorOr(err, fallback)
	return e, e.RetryAfter
}

// For returns the response for err; errors that are none of ours are
// Internal.
func For(err error) *Error { return errorOr(err, Internal) }

// errorOr returns the response for err, or fallback if err is none of ours.
func errorOr(err error, fallback *Error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var o *router.Outcome
	if errors.As(err, &o) {
		if e := delivery(o); e != nil {
			return e
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge), errors.As(err, &tooLarge):
		return TooLarge
	case isHeaderTooLarge(err):
		return HeaderTooLarge
	case isTimeout(err):
		return RequestTimeout
	}
	return fallback
}

func isHeaderTooLarge(err error) bool {
	var e *fasthttp.ErrSmallBuffer
	return errors.As(err, &e)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
