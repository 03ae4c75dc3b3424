package httperr

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Refuser answers requests with an Error's response and counts each by its
// code. Refusals are answered and counted here, and only here, whichever
// path they were on.
type Refuser struct {
	vec     *prometheus.CounterVec
	counted []prometheus.Counter // by Error.idx; static
}

// NewRefuser counts refusals in vec, by the label its one label name
// holds: relay_webhooks_total{outcome}.
func NewRefuser(vec *prometheus.CounterVec) *Refuser {
	r := &Refuser{vec: vec}
	for _, e := range all {
		r.counted = append(r.counted, vec.WithLabelValues(e.Code))
	}
	return r
}

// refuse counts err's response, or fallback's if err is none of ours, and
// returns it with its Retry-After.
func (r *Refuser) refuse(err error, fallback *Error) (*Error, int) {
	e, retry := Respond(err, fallback)
	if e.idx < len(r.counted) {
		r.counted[e.idx].Inc()
	} else { // made after NewRefuser: not on a hot path
		r.vec.WithLabelValues(e.Code).Inc()
	}
	return e, retry
}

// Refuse answers a request on fasthttp with err's response (Internal if err
// is none of ours) and counts it.
func (r *Refuser) Refuse(ctx *fasthttp.RequestCtx, err error) {
	e, retry := r.refuse(err, Internal)
	write(ctx, e, retry, err)
}

// ServeError is fasthttp's Server.ErrorHandler: requests that fasthttp
// could not read get the same JSON shape as every other refusal (BadRequest
// unless err says more), and count.
func (r *Refuser) ServeError(ctx *fasthttp.RequestCtx, err error) {
	e, retry := r.refuse(err, BadRequest)
	write(ctx, e, retry, err)
}

// RefuseHTTP is Refuse for a net/http request (HTTP/3).
func (r *Refuser) RefuseHTTP(w http.ResponseWriter, err error) {
	e, retry := r.refuse(err, Internal)
	writeHTTP(w, e, retry, err)
}

// writeHTTP answers err with e and, if retry > 0, Retry-After: retry.
func writeHTTP(w http.ResponseWriter, e *Error, retry int, err error) {
	h := w.Header()
	SetJSONHTTPHeaders(h)
	if retry > 0 {
		h.Set("Retry-After", strconv.Itoa(retry))
	}
	if e.Allow != "" {
		h.Set("Allow", e.Allow)
	}
	w.WriteHeader(e.Status)
	w.Write(e.bodyFor(err))
}

// SetJSONHTTPHeaders sets the headers of every JSON answer, a device's
// reply's too, on net/http.
func SetJSONHTTPHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// write answers err with e and, if retry > 0, Retry-After: retry.
func write(ctx *fasthttp.RequestCtx, e *Error, retry int, err error) {
	ctx.Response.Reset()
	ctx.SetStatusCode(e.Status)
	SetJSONHeaders(&ctx.Response.Header)
	if retry > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retry))
	}
	if e.Allow != "" {
		ctx.Response.Header.Set("Allow", e.Allow)
	}
	ctx.SetBody(e.bodyFor(err))
}

// SetJSONHeaders is SetJSONHTTPHeaders on fasthttp.
func SetJSONHeaders(h *fasthttp.ResponseHeader) {
	h.SetContentType("application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}
