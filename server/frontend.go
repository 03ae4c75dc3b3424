package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/fasthttp/websocket"
	"github.com/pixelrelay/relay/httperr"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/web"
	"github.com/pixelrelay/relay/webhook"
	"github.com/valyala/fasthttp"
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

// serveTCP routes HTTPS requests: webhooks, the device page and its config.
func (n *Node) serveTCP(ctx *fasthttp.RequestCtx) {
	// Set last: error responses reset the headers.
	defer ctx.Response.Header.Set("Alt-Svc", n.altSvc)
	switch path := string(ctx.Path()); path {
	case webhook.Path:
		n.hook.ServeFastHTTP(ctx)
	case ConnectPath:
		n.connectWebSocket(ctx)
	case DeviceConfigPath:
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetBody(n.deviceConfig())
	default:
		body, ctype, ok := web.Asset(path)
		if !ok || !(ctx.IsGet() || ctx.IsHead()) {
			n.hook.Refuse(ctx, httperr.NotFound)
			return
		}
		ctx.SetContentType(ctype)
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.SetBody(body)
	}
}

// connectWebSocket takes a device session over WebSocket (PROTOCOL §2.5),
// for devices whose network lets no UDP through. The session is the same
// as over QUIC; only its streams ride in WebSocket messages.
func (n *Node) connectWebSocket(ctx *fasthttp.RequestCtx) {
	origin := string(ctx.Request.Header.Peek("Origin"))
	if origin != "" && origin != "https://"+string(ctx.Host()) && !slices.Contains(n.cfg.AllowOrigins, origin) {
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
		n.log.Debug("websocket upgrade failed", "err", err)
	}
}

// serveH3Page serves the device page and its config over HTTP/3.
func (n *Node) serveH3Page(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == DeviceConfigPath {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(n.deviceConfig())
		return
	}
	body, ctype, ok := web.Asset(req.URL.Path)
	if !ok || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
		n.hook.RefuseHTTP(w, httperr.NotFound)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(body)
}

// wsDropped counts a frame a WebSocket session gave up.
func (n *Node) wsDropped(reason string) {
	if c := n.wsDrops[reason]; c != nil {
		c.Inc()
	}
}
