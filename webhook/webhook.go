// Package webhook is the relay's HTTP frontend: it takes
// POST /cloud?mode=MODE&token=TOKEN, hands the body to the device bound to
// the token through a router.Deliverer, and answers with the device's reply.
//
// Nothing from a request outlives the handler: Deliver returns before the
// handler does, and the token is only ever hashed.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

// Path is the webhook endpoint; the server routes it to ServeFastHTTP
// (HTTPS) and ServeHTTP (HTTP/3).
const Path = "/cloud"

// Config holds the frontend's limits.
type Config struct {
	// AckTimeout bounds the wait for the device's reply.
	AckTimeout time.Duration
	// MaxBody is the largest body the HTTP/3 frontend reads (413 above);
	// on TCP fasthttp's MaxRequestBodySize enforces it.
	MaxBody int
	// Metrics receives relay_webhooks_total{outcome} and
	// relay_webhook_seconds; nil keeps them private.
	Metrics *metrics.Set
}

// Defaults for Config.
const (
	DefaultAckTimeout = 5 * time.Second
	DefaultMaxBody    = 64 << 10
)

// Handler serves webhooks.
type Handler struct {
	d        router.Deliverer // static
	cfg      Config           // static
	draining atomic.Bool

	outcomes  []*metrics.Counter // by Error.idx; static
	delivered *metrics.Counter   // the device answered
	latency   *metrics.PrometheusHistogram
}

// latencyBuckets span a loopback round trip (~0.1 ms) to the ack timeout.
var latencyBuckets = []float64{0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Drain makes the handler refuse new webhooks with 503 and Retry-After while
// the relay shuts down; requests already in delivery finish.
func (h *Handler) Drain() { h.draining.Store(true) }

// New returns a Handler delivering through d. The body size limit is the
// fasthttp server's MaxRequestBodySize, answered by ServerError.
func New(d router.Deliverer, cfg Config) *Handler {
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	h := &Handler{d: d, cfg: cfg}
	for _, e := range allErrors {
		h.outcomes = append(h.outcomes, cfg.Metrics.GetOrCreateCounter(`relay_webhooks_total{outcome="`+e.Code+`"}`))
	}
	h.delivered = cfg.Metrics.NewCounter(`relay_webhooks_total{outcome="delivered"}`)
	h.latency = cfg.Metrics.NewPrometheusHistogramExt("relay_webhook_seconds", latencyBuckets)
	return h
}

// fail counts a refusal and returns its response.
func (h *Handler) fail(err error) *Error {
	e := errorFor(err)
	h.outcomes[e.idx].Inc()
	return e
}

// answered counts a delivery the device answered.
func (h *Handler) answered(start time.Time) {
	h.delivered.Inc()
	h.latency.UpdateDuration(start)
}

var bearer = []byte("Bearer ")

// request is one webhook as a frontend read it; the slices are valid for
// the call only.
type request struct {
	post  bool
	mode  []byte // ?mode=
	token []byte // ?token=
	auth  []byte // Authorization header
	body  []byte
}

// serve is the webhook logic behind both frontends: check, route, deliver.
func (h *Handler) serve(r request) (router.Reply, error) {
	if !r.post {
		return router.Reply{}, ErrMethod
	}
	if h.draining.Load() {
		return router.Reply{}, ErrDraining
	}
	mode, token, err := parse(r)
	if err != nil {
		return router.Reply{}, err
	}
	if !json.Valid(r.body) {
		return router.Reply{}, ErrBadJSON
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.AckTimeout)
	defer cancel()
	return h.d.Deliver(ctx, router.KeyOf(token), router.Message{Mode: mode, Body: r.body})
}

// ServeFastHTTP answers a webhook on the TCP frontend. The caller routes
// only /cloud here.
func (h *Handler) ServeFastHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	args := ctx.QueryArgs()
	reply, err := h.serve(request{
		post:  ctx.IsPost(),
		mode:  args.Peek("mode"),
		token: args.Peek("token"),
		auth:  ctx.Request.Header.Peek(fasthttp.HeaderAuthorization),
		body:  ctx.PostBody(),
	})
	if err != nil {
		writeError(ctx, h.fail(err))
		return
	}
	h.answered(start)
	ctx.SetStatusCode(reply.Status)
	setJSONHeaders(&ctx.Response.Header)
	ctx.SetBody(reply.Body)
}

// ServeHTTP answers a webhook with net/http: the HTTP/3 frontend. The caller
// routes only /cloud here.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var body []byte
	var err error
	if r.Method == http.MethodPost {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.cfg.MaxBody)))
	}
	var reply router.Reply
	if err == nil {
		q := r.URL.Query()
		reply, err = h.serve(request{
			post:  r.Method == http.MethodPost,
			mode:  []byte(q.Get("mode")),
			token: []byte(q.Get("token")),
			auth:  []byte(r.Header.Get("Authorization")),
			body:  body,
		})
	}
	if err != nil {
		writeHTTPError(w, h.fail(err))
		return
	}
	h.answered(start)
	setJSONHTTPHeaders(w.Header())
	w.WriteHeader(reply.Status)
	w.Write(reply.Body)
}

// parse reads the mode and the token. The token may come in the query or,
// kept out of proxy logs, in an Authorization: Bearer header; when both are
// given they must agree.
func parse(r request) (mode string, token []byte, err error) {
	if len(r.mode) == 0 {
		return "", nil, ErrModeMissing
	}
	mode, ok := wire.ParseMode(r.mode)
	if !ok {
		return "", nil, ErrModeUnknown
	}
	token = r.token
	if auth := r.auth; len(auth) > 0 {
		if !bytes.HasPrefix(auth, bearer) {
			return "", nil, ErrTokenBad
		}
		h := auth[len(bearer):]
		if len(token) > 0 && !bytes.Equal(token, h) {
			return "", nil, ErrTokenConflict
		}
		token = h
	}
	if len(token) == 0 {
		return "", nil, ErrTokenMissing
	}
	if wire.CheckToken(token) != nil {
		return "", nil, ErrTokenBad
	}
	return mode, token, nil
}
