// Package webhook is the relay's HTTP frontend: it takes
// POST /cloud?mode=MODE&token=TOKEN (or a GET for the modes that read the
// clock), hands the body to the device bound to the token by the way the
// router gives (Router.Route), and answers with the device's reply.
//
// Nothing from a request outlives the handler: Deliver returns before the
// handler does, and the token is only ever hashed.
//
// Three rate limits guard delivery, each a token bucket per key (package
// limit): per source address (IPv4, or IPv6 /64) on every webhook, per
// device token on webhooks for a connected device, and per source address
// on no_device answers, which is what guessing tokens produces. Refusals are
// 429 rate_limited with a Retry-After from the bucket. The buckets hold
// token hashes and addresses in memory only, for a few seconds after their
// last use; no label or log ever names either.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pixelrelay/relay/httperr"
	"github.com/pixelrelay/relay/internal/setting"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/valyala/fasthttp"
)

// Path is the webhook endpoint; the server routes it to ServeFastHTTP
// (HTTPS) and ServeHTTP (HTTP/3).
const Path = "/cloud"

// HeaderPath names, on a device's answer, a last hop that is not the
// relay's own end-to-end protocol (router.Reply.Path: "mqtt-plain",
// "mqtt-tls"), so that a caller can tell a clock on plain MQTT.
const HeaderPath = "Relay-Path"

// Config holds the frontend's limits. Start from DefaultConfig: a rate
// limit set to zero is off (limit.Rate's rule); AckTimeout and MaxBody must
// be positive.
type Config struct {
	// AckTimeout bounds the wait for the device's reply (504 after).
	AckTimeout time.Duration
	// MaxBody is the largest body the HTTP/3 frontend reads (413 above);
	// on TCP fasthttp's MaxRequestBodySize enforces it.
	MaxBody int

	// Rate limits; over one the answer is 429 rate_limited.
	PerToken  limit.Rate // webhooks per device token, for a connected device
	PerSource limit.Rate // webhooks per source: an IPv4 address or an IPv6 /64
	Misses    limit.Rate // no_device answers per source; 429 instead of 404 past it

	// Metrics registers relay_webhooks_total{outcome},
	// relay_webhook_seconds and the rate limits' series; nil keeps them
	// private.
	Metrics prometheus.Registerer
}

// Defaults for Config. A clock shows a few messages a second at most, so a
// token gets 20/s with bursts of 40. Sources are generous, since many
// callers can share one egress address (IFTTT, a carrier's NAT, an office).
// A few misses a second cover callers whose clock is offline; a guesser
// needs billions per hit.
const (
	DefaultAckTimeout = 5 * time.Second
	DefaultMaxBody    = 64 << 10
)

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		AckTimeout: DefaultAckTimeout,
		MaxBody:    DefaultMaxBody,
		PerToken:   limit.Rate{PerSecond: 20, Burst: 40},
		PerSource:  limit.Rate{PerSecond: 200, Burst: 400},
		Misses:     limit.Rate{PerSecond: 5, Burst: 20},
	}
}

// Check reports the first setting that cannot work, as a *setting.Error
// named as cmd/relay's flag.
func (c *Config) Check() error {
	switch {
	case c.AckTimeout <= 0:
		return setting.Errorf("ack-timeout", "webhook: %v: want a positive duration", c.AckTimeout)
	case c.MaxBody <= 0:
		return setting.Errorf("max-body", "webhook: %d bytes: want a positive size", c.MaxBody)
	}
	for _, l := range []struct {
		name string
		r    limit.Rate
	}{{"token-rate", c.PerToken}, {"ip-rate", c.PerSource}, {"miss-rate", c.Misses}} {
		if err := l.r.Check(); err != nil {
			return setting.Errorf(l.name, "webhook: %w", err)
		}
	}
	return nil
}

// Router is what the Handler delivers through: *router.Router, which
// routes to the devices on this node and, in a cluster, through its mesh to
// the others. A nil Dest means that no device holds the key: the webhook is
// answered no_device before a delivery starts (no context, no timer, no
// entry in the token limit); with a mesh every key has a Dest, and a miss
// comes back from its Deliver.
type Router interface {
	Route(router.Key) router.Dest
}

// Handler serves webhooks. Its Refuse, RefuseHTTP and ServeError answer
// and count the refusals of the paths around /cloud too.
type Handler struct {
	*httperr.Refuser // counts relay_webhooks_total by code; static

	r        Router // static
	cfg      Config // static
	draining atomic.Bool

	tokens  *limit.Keyed[router.Key] // webhooks per token; static
	sources *limit.Keyed[netip.Addr] // webhooks per source; static
	misses  *limit.Keyed[netip.Addr] // no_device answers per source; static

	delivered prometheus.Counter // the device answered with a status below 400
	refused   prometheus.Counter // the device answered with a 4xx or 5xx: its own error
	latency   prometheus.Histogram
	limited   [limitCount]prometheus.Counter // 429s by the limit that refused; static
}

// The rate limits, for relay_rate_limited_total{limit}.
const (
	limitIP = iota
	limitToken
	limitMiss
	limitCount
)

var limitNames = [limitCount]string{limitIP: "ip", limitToken: "token", limitMiss: "miss"}

// latencyBuckets span a loopback round trip (~0.1 ms) to the ack timeout.
var latencyBuckets = []float64{0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Drain makes the handler refuse new webhooks with 503 and Retry-After while
// the relay shuts down; requests already in delivery finish.
func (h *Handler) Drain() { h.draining.Store(true) }

// New returns a Handler delivering through r. On TCP the body size limit
// is the fasthttp server's MaxRequestBodySize, answered by ServeError.
func New(r Router, cfg Config) (*Handler, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	h := &Handler{
		r:       r,
		cfg:     cfg,
		tokens:  limit.New[router.Key](cfg.PerToken),
		sources: limit.New[netip.Addr](cfg.PerSource),
		misses:  limit.New[netip.Addr](cfg.Misses),
	}
	m := promauto.With(cfg.Metrics)
	outcomes := m.NewCounterVec(prometheus.CounterOpts{Name: "relay_webhooks_total",
		Help: "Webhooks by outcome: delivered (the device answered below 400), device_error (the device answered 4xx or 5xx), or the relay's error code; refusals on other paths count by their code too (not_found: a path other than /cloud)."},
		[]string{"outcome"})
	h.Refuser = httperr.NewRefuser(outcomes)
	h.delivered = outcomes.WithLabelValues("delivered")
	h.refused = outcomes.WithLabelValues("device_error")
	h.latency = m.NewHistogram(prometheus.HistogramOpts{Name: "relay_webhook_seconds",
		Help: "Time from a webhook read to the device's answer, for webhooks the device answered.", Buckets: latencyBuckets})
	type stats interface {
		Len() int
		Untracked() uint64
	}
	limited := m.NewCounterVec(prometheus.CounterOpts{Name: "relay_rate_limited_total", Help: "Webhooks refused with 429, by the limit that refused: ip, token or miss."}, []string{"limit"})
	limits := [limitCount]stats{limitIP: h.sources, limitToken: h.tokens, limitMiss: h.misses}
	for i, l := range limits {
		label := prometheus.Labels{"limit": limitNames[i]}
		h.limited[i] = limited.With(label)
		m.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_rate_limit_keys", Help: "Keys (source addresses, token hashes) with a rate-limit bucket in memory, by limit.",
			ConstLabels: label}, func() float64 { return float64(l.Len()) })
		m.NewCounterFunc(prometheus.CounterOpts{Name: "relay_rate_limit_untracked_total", Help: "Requests let through unlimited because the limit's table was full, by limit.",
			ConstLabels: label}, func() float64 { return float64(l.Untracked()) })
	}
	return h, nil
}

// answered counts a delivery the device answered with status.
func (h *Handler) answered(start time.Time, status int) {
	if status < 400 {
		h.delivered.Inc()
	} else {
		h.refused.Inc()
	}
	h.latency.Observe(time.Since(start).Seconds())
}

var bearer = []byte("Bearer ")

// request is one webhook as a frontend read it; the slices are valid for
// the call only.
type request struct {
	src         netip.Addr // the caller's source, as limit.Source() keys it
	method      string     // GET, POST, or another (refused)
	mode        []byte     // ?mode=
	token       []byte     // ?token=
	name        []byte     // ?name= (mode=custom)
	hasName     bool
	dup         string // the first of mode, token, name, Authorization given twice; "" for none
	auth        []byte // Authorization header
	contentType []byte
	body        []byte

	// How a frontend learns that the caller hung up during the delivery:
	// HTTP/3 gives a context that ends then (ctx), HTTP/1.1 a TCP
	// connection to watch (conn). Either may be nil.
	ctx  context.Context
	conn net.Conn
}

// serve is the webhook logic behind both frontends: limit, check, route,
// deliver. now is when the request arrived.
func (h *Handler) serve(r request, now time.Time) (router.Reply, error) {
	if err := h.admit(r.src, now); err != nil {
		return router.Reply{}, err
	}
	return h.handle(r, now)
}

// admit applies the per-source limit, before anything else is looked at.
func (h *Handler) admit(src netip.Addr, now time.Time) error {
	if ok, after := h.sources.Allow(src, now); !ok {
		return h.rateLimited(limitIP, after)
	}
	return nil
}

// handle is serve after admit.
func (h *Handler) handle(r request, now time.Time) (router.Reply, error) {
	if r.method != fasthttp.MethodPost && r.method != fasthttp.MethodGet {
		if mode, ok := wire.ParseMode(r.mode); ok && wire.IsRead(mode) {
			return router.Reply{}, ErrMethodRead
		}
		return router.Reply{}, ErrMethod
	}
	if h.draining.Load() {
		return router.Reply{}, ErrDraining
	}
	mode, token, err := parse(r)
	if err != nil {
		return router.Reply{}, err
	}
	body := r.body
	if r.method == fasthttp.MethodGet {
		if !wire.IsRead(mode) {
			return router.Reply{}, ErrMethod
		}
		body = nil // a read; a GET's body means nothing
	}
	var query string
	if r.hasName {
		if query, err = nameQuery(r.name); err != nil {
			return router.Reply{}, err
		}
	}
	if body, err = toJSON(mode, r.contentType, body, h.cfg.MaxBody); err != nil {
		return router.Reply{}, err
	}
	key := router.KeyOf(token)
	dest := h.r.Route(key)
	if dest == nil {
		return router.Reply{}, h.miss(r.src, now, router.ErrNoDevice)
	}
	if ok, after := h.tokens.Allow(key, now); !ok {
		return router.Reply{}, h.rateLimited(limitToken, after)
	}
	parent := r.ctx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, h.cfg.AckTimeout)
	defer cancel()
	if r.conn != nil {
		defer watchCaller(r.conn, cancel)()
	}
	// A caller that hung up canceled ctx: the outcome is router.
	// ErrCanceled, answered caller_gone from the table.
	reply, err := dest.Deliver(ctx, router.Message{Mode: mode, Query: query, Body: body})
	if errors.Is(err, router.ErrNoDevice) {
		err = h.miss(r.src, time.Now(), err)
	}
	return reply, err
}

// miss answers a webhook for a token no device holds: err (404 no_device)
// while the source has misses left, 429 once it has used them up. Only
// misses are limited: a caller whose neighbours behind the same address
// probe tokens still reaches its own, connected device.
func (h *Handler) miss(src netip.Addr, now time.Time, err error) error {
	if ok, after := h.misses.Allow(src, now); !ok {
		return h.rateLimited(limitMiss, after)
	}
	return err
}

// rateLimited counts a refusal by limit i and returns it, with the time
// until the limit's next token as its Retry-After.
func (h *Handler) rateLimited(i int, after time.Duration) error {
	h.limited[i].Inc()
	return httperr.RetryIn(ErrRateLimited, after)
}

// ServeFastHTTP answers a webhook on the TCP frontend. The caller routes
// only /cloud here.
func (h *Handler) ServeFastHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	args := ctx.QueryArgs()
	src, _ := netip.AddrFromSlice(ctx.RemoteIP())
	r := request{
		src:         limit.Source(src),
		method:      methodOf(ctx.Method()),
		mode:        args.Peek("mode"),
		token:       args.Peek("token"),
		auth:        ctx.Request.Header.Peek(fasthttp.HeaderAuthorization),
		contentType: ctx.Request.Header.ContentType(),
		body:        ctx.PostBody(),
		conn:        ctx.Conn(),
	}
	r.name, r.hasName = args.Peek("name"), args.Has("name")
	r.dup = duplicated(args, &ctx.Request.Header)
	reply, err := h.serve(r, start)
	if err != nil {
		h.Refuse(ctx, err)
		return
	}
	h.answered(start, reply.Status)
	ctx.SetStatusCode(reply.Status)
	httperr.SetJSONHeaders(&ctx.Response.Header)
	if reply.Path != "" {
		ctx.Response.Header.Set(HeaderPath, reply.Path)
	}
	ctx.SetBody(reply.Body)
}

// ServeHTTP answers a webhook with net/http: the HTTP/3 frontend. The caller
// routes only /cloud here.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	src := limit.Source(ap.Addr())
	// The source limit comes before the body is read.
	err := h.admit(src, start)
	var body []byte
	if err == nil && r.Method == http.MethodPost {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.cfg.MaxBody)))
	}
	var reply router.Reply
	if err == nil {
		q := r.URL.Query()
		req := request{
			src:         src,
			method:      methodOf([]byte(r.Method)),
			mode:        []byte(q.Get("mode")),
			token:       []byte(q.Get("token")),
			auth:        []byte(r.Header.Get("Authorization")),
			contentType: []byte(r.Header.Get("Content-Type")),
			body:        body,
			ctx:         r.Context(),
		}
		if names, ok := q["name"]; ok {
			req.hasName, req.name = true, []byte(names[0])
		}
		for _, k := range []string{"mode", "token", "name"} {
			if len(q[k]) > 1 && req.dup == "" {
				req.dup = k
			}
		}
		if len(r.Header.Values("Authorization")) > 1 && req.dup == "" {
			req.dup = "Authorization"
		}
		reply, err = h.handle(req, start)
	}
	if err != nil {
		h.RefuseHTTP(w, err)
		return
	}
	h.answered(start, reply.Status)
	httperr.SetJSONHTTPHeaders(w.Header())
	if reply.Path != "" {
		w.Header().Set(HeaderPath, reply.Path)
	}
	w.WriteHeader(reply.Status)
	w.Write(reply.Body)
}

// duplicated names the first of the webhook's parameters (mode, token,
// name) and the Authorization header that the request gives more than
// once, or "". It does not allocate.
func duplicated(args *fasthttp.Args, hdr *fasthttp.RequestHeader) string {
	var mode, token, name, auth int
	for k := range args.All() {
		switch string(k) {
		case "mode":
			mode++
		case "token":
			token++
		case "name":
			name++
		}
	}
	for k := range hdr.All() {
		if bytes.EqualFold(k, authorization) {
			auth++
		}
	}
	switch {
	case mode > 1:
		return "mode"
	case token > 1:
		return "token"
	case name > 1:
		return "name"
	case auth > 1:
		return "Authorization"
	}
	return ""
}

var authorization = []byte(fasthttp.HeaderAuthorization)

// parse reads the mode and the token. The token may come in the query or,
// kept out of proxy logs, in an Authorization: Bearer header; when both are
// given they must agree.
func parse(r request) (mode string, token []byte, err error) {
	if r.dup != "" {
		return "", nil, httperr.Detailed(ErrDuplicate, r.dup+" given twice; give it once")
	}
	if len(r.mode) == 0 {
		return "", nil, ErrModeMissing
	}
	mode, ok := wire.ParseMode(r.mode)
	if !ok {
		return "", nil, ErrModeUnknown
	}
	if r.hasName && !wire.TakesName(mode) {
		return "", nil, httperr.Detailed(ErrParam, "name belongs to mode=custom (the custom app's name)")
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
