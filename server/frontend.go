package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/fasthttp/websocket"
	"github.com/pixelrelay/relay/httperr"
	"github.com/pixelrelay/relay/internal/redact"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/web"
	"github.com/pixelrelay/relay/webhook"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// DeviceConfigPath tells the device page how to reach the relay.
const DeviceConfigPath = "/device-config"

// deviceConfig is what the page fetches before it connects.
type deviceConfig struct {
	// CertHashes are base64 SHA-256 hashes of the UDP certificate, for
	// WebTransport's serverCertificateHashes; empty with a trusted one.
	CertHashes []string `json:"certHashes"`
}

func (n *Node) deviceConfig() []byte {
	c := deviceConfig{CertHashes: []string{}}
	if n.cfg.CertHashes != nil {
		for _, h := range n.cfg.CertHashes() {
			c.CertHashes = append(c.CertHashes, base64.StdEncoding.EncodeToString(h[:]))
		}
	}
	b, _ := json.Marshal(c)
	return b
}

// The public port's endpoints split in three. /cloud (webhooks) has a
// fasthttp handler on TCP, the hot path, which never goes through the
// adaptor, and a net/http one for HTTP/3. /connect takes device sessions:
// a fasthttp WebSocket upgrade on TCP (the upgrader must own the hijack),
// WebTransport on HTTP/3, both behind originAllowed. Everything else, the
// device page, its config and the not_found answers, is one net/http
// handler (pages), served on HTTP/3 as it is and on TCP through
// fasthttpadaptor: the same status, headers and bytes on both, Alt-Svc
// aside. The adaptor costs a page request some microseconds
// (BenchmarkPageHTTPS); a visitor loads the page once.

// newPages returns the handler of every path other than /cloud and
// /connect. Its ServeMux redirects a path to its clean form; an unknown
// path, a method other than GET or HEAD for a page file, or OPTIONS *
// (which ServeMux would answer itself: see h3Mux) is not_found.
func (n *Node) newPages() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(DeviceConfigPath, n.serveDeviceConfig)
	mux.HandleFunc("/", n.serveAsset)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.RequestURI == "*" {
			n.hook.RefuseHTTP(w, httperr.NotFound)
			return
		}
		mux.ServeHTTP(w, req)
	})
}

func (n *Node) serveDeviceConfig(w http.ResponseWriter, _ *http.Request) {
	writeFile(w, n.deviceConfig(), "application/json", "no-store")
}

func (n *Node) serveAsset(w http.ResponseWriter, req *http.Request) {
	body, ctype, ok := web.Asset(req.URL.Path)
	if !ok || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
		n.hook.RefuseHTTP(w, httperr.NotFound)
		return
	}
	writeFile(w, body, ctype, "no-cache")
}

// writeFile answers 200 with body. Content-Length is set here because
// HTTP/3 would otherwise stream a body over its buffer without one, which
// fasthttp always sends.
func writeFile(w http.ResponseWriter, body []byte, ctype, cache string) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", cache)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// newPagesTCP serves pages on the TCP port. net/http parses request URIs
// more strictly than fasthttp ("/%zz"); the adaptor would answer those 500
// text, so they are refused here, 400 bad_request as any request the
// relay cannot parse (HTTP/3 resets such a request's stream).
func (n *Node) newPagesTCP(pages http.Handler) fasthttp.RequestHandler {
	adapted := fasthttpadaptor.NewFastHTTPHandler(pages)
	return func(ctx *fasthttp.RequestCtx) {
		if _, err := url.ParseRequestURI(string(ctx.RequestURI())); err != nil {
			n.hook.Refuse(ctx, httperr.BadRequest)
			return
		}
		adapted(ctx)
	}
}

// serveTCP routes HTTPS requests: webhooks, WebSocket device sessions and
// the pages.
func (n *Node) serveTCP(ctx *fasthttp.RequestCtx) {
	// Set last: error responses reset the headers.
	defer ctx.Response.Header.Set("Alt-Svc", n.altSvc)
	switch string(ctx.Path()) {
	case webhook.Path:
		n.hook.ServeFastHTTP(ctx)
	case ConnectPath:
		n.connectWebSocket(ctx)
	default:
		n.pagesTCP(ctx)
	}
}

// originAllowed is /connect's origin check, over WebSocket and
// WebTransport alike: it admits device pages from the relay's own origin
// (https and the host the request names) and from --allow-origin. Clients
// that send no Origin are not browsers, so there is no visitor's browser
// to misuse.
func (n *Node) originAllowed(origin, host string) bool {
	return origin == "" || origin == "https://"+host || slices.Contains(n.cfg.AllowOrigins, origin)
}

// checkOriginWS is originAllowed for a WebSocket upgrade.
func (n *Node) checkOriginWS(ctx *fasthttp.RequestCtx) bool {
	return n.originAllowed(string(ctx.Request.Header.Peek("Origin")), string(ctx.Host()))
}

// connectWebSocket takes a device session over WebSocket (PROTOCOL §2.5),
// for devices whose network lets no UDP through. The session is the same
// as over QUIC; only its streams ride in WebSocket messages.
func (n *Node) connectWebSocket(ctx *fasthttp.RequestCtx) {
	// Checked before the upgrader (which checks it again) so that a
	// refusal gets the relay's JSON answer and counts.
	if !n.checkOriginWS(ctx) {
		n.hook.Refuse(ctx, httperr.OriginNotAllowed)
		return
	}
	if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		n.hook.Refuse(ctx, httperr.BadRequest)
		return
	}
	remote := ctx.RemoteAddr() // the caller's, after a PROXY header
	err := n.wsUpgrader.Upgrade(ctx, func(c *websocket.Conn) {
		w := transport.WebSocket(c, remote, transport.WSOptions{
			MaxIncomingStreams: quicMaxIncomingStreams,
			MaxStreamBuffer:    quicMaxStreamWindow(n.cfg.Webhook.MaxBody),
			IdleTimeout:        n.cfg.Session.IdleTimeout,
			WriteTimeout:       n.cfg.WebSocketWriteTimeout,
			Dropped:            n.wsDropped,
		})
		n.dev.Handle(w)
		<-w.Done() // fasthttp reuses the connection once this returns
	})
	if err != nil {
		n.log.Debug("websocket upgrade failed", "err", redact.Error(err))
	}
}

// wsDropped counts a frame a WebSocket session gave up.
func (n *Node) wsDropped(reason string) {
	if c := n.wsDrops[reason]; c != nil {
		c.Inc()
	}
}
