package awtrix

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Errors of New.
var (
	ErrBadURL = errors.New("awtrix: clock URL must be http(s)://host[:port][/path]")
	ErrBadAPI = errors.New("awtrix: API version must be 2, 3 or auto")
)

// Outcomes of HandleMessage. They never leave the package: HandleMessage
// turns them into a status and a JSON reply through errTable.
var (
	errBadRequest   = errors.New("awtrix: bad request")
	errUnsupported  = errors.New("awtrix: not supported by the clock's API")
	errTooLarge     = errors.New("awtrix: body too large for the clock")
	errForbidden    = errors.New("awtrix: mode not allowed by the agent")
	errClockStatus  = errors.New("awtrix: clock answered with an error status")
	errUnreachable  = errors.New("awtrix: clock unreachable")
	errClockTimeout = errors.New("awtrix: clock did not answer in time")
	errUnknownClock = errors.New("awtrix: clock speaks neither AWTRIX 3's nor AWTRIX 2's API")
)

// errTable maps every outcome to its reply, in one place. An empty message
// means the error carries its own (a *reqError or a *clockError).
var errTable = []struct {
	err     error
	status  int
	code    string
	message string
}{
	{errBadRequest, http.StatusBadRequest, "bad_request", ""},
	{errUnsupported, http.StatusBadRequest, "unsupported", ""},
	{errTooLarge, http.StatusRequestEntityTooLarge, "too_large_for_clock", ""},
	{errForbidden, http.StatusForbidden, "forbidden", "this agent refuses erase, resetSettings and doupdate; its owner can allow them with --allow-destructive"},
	{errClockStatus, http.StatusBadGateway, "clock_error", ""},
	{errUnreachable, http.StatusBadGateway, "clock_unreachable", "clock unreachable"},
	{errClockTimeout, http.StatusBadGateway, "clock_timeout", "the clock did not answer in time"},
	{errUnknownClock, http.StatusBadGateway, "clock_unknown", "the clock answers neither AWTRIX 3's GET /api/stats nor AWTRIX 2's /api/v3/basics; check --forward"},
}

// reqError is a problem with the message itself. msg is meant for the
// webhook caller: it names what is wrong without echoing the body.
type reqError struct {
	kind error // errBadRequest, errUnsupported or errTooLarge
	msg  string
}

func (e *reqError) Error() string { return e.kind.Error() + ": " + e.msg }
func (e *reqError) Unwrap() error { return e.kind }

func badRequest(format string, args ...any) error {
	return &reqError{errBadRequest, fmt.Sprintf(format, args...)}
}

func unsupported(format string, args ...any) error {
	return &reqError{errUnsupported, fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) error {
	return &reqError{errTooLarge, fmt.Sprintf(format, args...)}
}

// clockError is a non-2xx answer from the clock.
type clockError struct {
	status    int
	body      []byte // at most maxClockReply bytes
	truncated bool
}

func (e *clockError) Error() string { return fmt.Sprintf("awtrix: clock answered %d", e.status) }
func (e *clockError) Unwrap() error { return errClockStatus }

// reply is the JSON shape of every answer HandleMessage gives.
type reply struct {
	OK          bool            `json:"ok,omitempty"`
	Error       string          `json:"error,omitempty"`
	Code        string          `json:"code,omitempty"`
	ClockStatus int             `json:"clock_status,omitempty"`
	ClockReply  json.RawMessage `json:"clock_reply,omitempty"`
	Truncated   bool            `json:"clock_reply_truncated,omitempty"`
}

// okReply is the answer to a clock's 2xx.
func okReply(status int, body []byte, truncated bool) (int, []byte) {
	return http.StatusOK, encode(reply{
		OK:          true,
		ClockStatus: status,
		ClockReply:  clockJSON(body),
		Truncated:   truncated,
	})
}

// errorReply maps err through errTable.
func errorReply(err error) (int, []byte) { return errorReplyOr(err, http.StatusInternalServerError) }

// errorReplyOr maps err through errTable; an err not in it is an internal
// error with status other.
func errorReplyOr(err error, other int) (int, []byte) {
	status, r := other, reply{Error: "internal error", Code: "internal"}
	for _, e := range errTable {
		if errors.Is(err, e.err) {
			status, r.Code, r.Error = e.status, e.code, e.message
			break
		}
	}
	var re *reqError
	if errors.As(err, &re) {
		r.Error = re.msg
	}
	var ce *clockError
	if errors.As(err, &ce) {
		r.Error = fmt.Sprintf("clock answered %d", ce.status)
		r.ClockStatus = ce.status
		r.ClockReply = clockJSON(ce.body)
		r.Truncated = ce.truncated
	}
	return status, encode(r)
}

// clockJSON embeds a clock's body in a reply: as is when it is JSON (AWTRIX 3
// stats, AWTRIX 2 "get" answers), else as a JSON string (AWTRIX 3's "OK").
// An empty body becomes "".
func clockJSON(b []byte) json.RawMessage {
	if len(b) > 0 && isJSON(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b)) // a string always marshals; bad UTF-8 becomes U+FFFD
	return s
}

// isJSON reports whether b is one JSON value.
func isJSON(b []byte) bool { return json.Valid(b) }

// isObject reports whether b is a JSON object.
func isObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

// encode marshals a reply. It cannot fail: every field is a plain value or
// RawMessage that clockJSON validated. The fallback keeps the shape anyway.
func encode(r reply) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		return []byte(`{"error":"internal error","code":"internal"}`)
	}
	return b
}
