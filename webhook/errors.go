package webhook

import (
	"net/http"
	"strings"

	"github.com/pixelrelay/relay/httperr"
	"github.com/pixelrelay/relay/wire"
)

// modeList names every mode, for the messages that list them.
var modeList = strings.Join(wire.Modes, ", ")

// The frontend's own refusals; the rest of the relay's HTTP answers (the
// delivery outcomes' included) are in package httperr, the one table.
var (
	ErrMethod        = httperr.New(http.StatusMethodNotAllowed, "method_not_allowed", "use POST; GET only reads: stats, screen, loop, effects, transitions, settings, apps", 0).WithAllow("POST")
	ErrMethodRead    = httperr.New(http.StatusMethodNotAllowed, "method_not_allowed", "use GET or POST", 0).WithAllow("GET, POST")
	ErrModeMissing   = httperr.New(http.StatusBadRequest, "mode_missing", "mode missing; one of "+modeList, 0)
	ErrModeUnknown   = httperr.New(http.StatusBadRequest, "bad_mode", "unknown mode; one of "+modeList, 0)
	ErrParam         = httperr.New(http.StatusBadRequest, "bad_param", "bad query parameter: name belongs to mode=custom", 0)
	ErrTokenMissing  = httperr.New(http.StatusBadRequest, "token_missing", "token missing; pass ?token= or Authorization: Bearer", 0)
	ErrTokenBad      = httperr.New(http.StatusBadRequest, "bad_token", "token malformed or too weak: 22-128 random characters of A-Z a-z 0-9 - _", 0)
	ErrTokenConflict = httperr.New(http.StatusBadRequest, "token_conflict", "query token and Authorization header differ", 0)
	// ErrDuplicate: a proxy that read the last of two values, where the
	// relay would read the first, would disagree with it about the
	// request.
	ErrDuplicate   = httperr.New(http.StatusBadRequest, "duplicate_param", "mode, token, name and the Authorization header may each be given once", 0)
	ErrBadJSON     = httperr.New(http.StatusBadRequest, "bad_json", "body is not valid JSON", 0)
	ErrBadForm     = httperr.New(http.StatusBadRequest, "bad_form", "form body has a field notify does not take; text, icon, color, duration, repeat, rainbow, hold, sound", 0)
	ErrDraining    = httperr.New(http.StatusServiceUnavailable, "draining", "relay is restarting; retry shortly", 5)
	ErrRateLimited = httperr.New(http.StatusTooManyRequests, "rate_limited", "too many requests; retry after the seconds in Retry-After", 1)
)
