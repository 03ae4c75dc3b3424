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
	"sync/atomic"
	"time"

	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

// Path is the webhook endpoint.
const Path = "/cloud"

// Config holds the frontend's limits.
type Config struct {
	// AckTimeout bounds the wait for the device's reply.
	AckTimeout time.Duration
}

// DefaultAckTimeout is the default for Config.AckTimeout.
const DefaultAckTimeout = 5 * time.Second

// Handler serves webhooks.
type Handler struct {
	d        router.Deliverer // static
	cfg      Config           // static
	draining atomic.Bool
}

// Drain makes the handler refuse new webhooks with 503 and Retry-After while
// the relay shuts down; requests already in delivery finish.
func (h *Handler) Drain() { h.draining.Store(true) }

// New returns a Handler delivering through d. The body size limit is the
// fasthttp server's MaxRequestBodySize, answered by ServerError.
func New(d router.Deliverer, cfg Config) *Handler {
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	return &Handler{d: d, cfg: cfg}
}

var bearer = []byte("Bearer ")

// ServeHTTP is a fasthttp.RequestHandler.
func (h *Handler) ServeHTTP(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) != Path {
		WriteError(ctx, ErrNotFound)
		return
	}
	if !ctx.IsPost() {
		WriteError(ctx, ErrMethod)
		return
	}
	if h.draining.Load() {
		WriteError(ctx, ErrDraining)
		return
	}
	mode, token, err := parse(ctx)
	if err != nil {
		WriteError(ctx, err)
		return
	}
	body := ctx.PostBody()
	if !json.Valid(body) {
		WriteError(ctx, ErrBadJSON)
		return
	}

	dctx, cancel := context.WithTimeout(context.Background(), h.cfg.AckTimeout)
	reply, err := h.d.Deliver(dctx, router.KeyOf(token), router.Message{Mode: mode, Body: body})
	cancel()
	if err != nil {
		WriteError(ctx, err)
		return
	}
	ctx.SetStatusCode(reply.Status)
	setJSONHeaders(&ctx.Response.Header)
	ctx.SetBody(reply.Body)
}

// parse reads the mode and the token. The token may come in the query or,
// kept out of proxy logs, in an Authorization: Bearer header; when both are
// given they must agree.
func parse(ctx *fasthttp.RequestCtx) (mode string, token []byte, err error) {
	args := ctx.QueryArgs()
	m := args.Peek("mode")
	if len(m) == 0 {
		return "", nil, ErrModeMissing
	}
	mode, ok := wire.ParseMode(m)
	if !ok {
		return "", nil, ErrModeUnknown
	}
	token = args.Peek("token")
	if auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization); len(auth) > 0 {
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
