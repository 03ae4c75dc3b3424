package server_test

import (
	"crypto/sha256"
	"crypto/tls"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/web"
	"github.com/quic-go/quic-go/http3"
)

// reply is an answer as a test compares it.
type reply struct {
	status int
	header http.Header
	body   string
}

// fetch sends one request and returns the answer, without following a
// redirect.
func fetch(t *testing.T, client *http.Client, method, url, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(url, "/*") {
		req.URL.Path, req.URL.Opaque = "", "*" // the request target "*"
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// TestPageAnswersAlikeOverTCPAndHTTP3: the page's files, /device-config,
// and the refusals and redirects around them answer the same status,
// headers and bytes over HTTPS on TCP as over HTTP/3, since one net/http
// handler serves both; only Alt-Svc (TCP advertising HTTP/3) and Date
// differ.
func TestPageAnswersAlikeOverTCPAndHTTP3(t *testing.T) {
	hash := sha256.Sum256([]byte("a certificate"))
	e := relaytest.Start(t, func(c *server.Config) { c.CertHashes = func() [][32]byte { return [][32]byte{hash} } })
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tcpTr := &http.Transport{TLSClientConfig: e.TLS.Clone()}
	h3Tr := &http3.Transport{TLSClientConfig: e.TLS.Clone()}
	t.Cleanup(func() { tcpTr.CloseIdleConnections(); h3Tr.Close() })
	tcp := &http.Client{Transport: tcpTr, CheckRedirect: noRedirect}
	h3 := &http.Client{Transport: h3Tr, CheckRedirect: noRedirect}
	_, port, _ := strings.Cut(e.Addr, ":")
	altSvc := `h3=":` + port + `"; ma=86400`

	for _, c := range []struct {
		method, path, body string
		status             int
		ctype              string
	}{
		{"GET", "/", "", 200, "text/html; charset=utf-8"},
		{"HEAD", "/", "", 200, "text/html; charset=utf-8"},
		{"GET", "/index.html", "", 200, "text/html; charset=utf-8"},
		{"GET", "/app.js", "", 200, "text/javascript; charset=utf-8"},
		{"GET", "/style.css", "", 200, "text/css; charset=utf-8"},
		{"GET", "/app.js?v=2", "", 200, "text/javascript; charset=utf-8"},
		{"GET", server.DeviceConfigPath, "", 200, "application/json"},
		{"HEAD", server.DeviceConfigPath, "", 200, "application/json"},
		{"GET", "/nope", "", 404, "application/json"},
		{"POST", "/", "x", 404, "application/json"},
		{"DELETE", "/app.js", "", 404, "application/json"},
		{"GET", "/cloud/", "", 404, "application/json"},
		{"GET", "/wire.test.mjs", "", 404, "application/json"},
		{"OPTIONS", "*", "", 404, "application/json"},
		// Paths net/http cleans are redirected to the clean one.
		{"GET", "//app.js", "", 307, "text/html; charset=utf-8"},
		{"GET", "/./app.js", "", 307, "text/html; charset=utf-8"},
		{"GET", "/static/../app.js", "", 307, "text/html; charset=utf-8"},
	} {
		url := "https://" + e.Addr + "/" + strings.TrimPrefix(c.path, "/")
		overTCP, overH3 := fetch(t, tcp, c.method, url, c.body), fetch(t, h3, c.method, url, c.body)
		if overTCP.status != c.status || overTCP.header.Get("Content-Type") != c.ctype {
			t.Errorf("%s %s over HTTPS: %d %q, want %d %q", c.method, c.path, overTCP.status, overTCP.header.Get("Content-Type"), c.status, c.ctype)
		}
		if got := overTCP.header.Get("Alt-Svc"); got != altSvc {
			t.Errorf("%s %s over HTTPS: Alt-Svc %q, want %q", c.method, c.path, got, altSvc)
		}
		if got := overH3.header.Values("Alt-Svc"); got != nil {
			t.Errorf("%s %s over HTTP/3: Alt-Svc %q, want none", c.method, c.path, got)
		}
		for _, a := range []reply{overTCP, overH3} {
			if a.header.Get("Date") == "" {
				t.Errorf("%s %s: no Date", c.method, c.path)
			}
			a.header.Del("Date")
			a.header.Del("Alt-Svc")
		}
		switch asset, _, _ := web.Asset(c.path); {
		case c.status == 200 && c.method == "HEAD":
			if overTCP.body != "" || overTCP.header.Get("Content-Length") == "" || overTCP.header.Get("Content-Length") == "0" {
				t.Errorf("HEAD %s over HTTPS: body %.80q, Content-Length %q", c.path, overTCP.body, overTCP.header.Get("Content-Length"))
			}
		case c.status == 200 && asset != nil && overTCP.body != string(asset):
			t.Errorf("%s %s over HTTPS: %.80q, not the page's file", c.method, c.path, overTCP.body)
		case c.status == 307 && overTCP.header.Get("Location") != "/app.js":
			t.Errorf("%s %s over HTTPS: Location %q, want /app.js", c.method, c.path, overTCP.header.Get("Location"))
		case c.status == 404 && relaytest.ErrorCode(t, []byte(overTCP.body)) != "not_found":
			t.Errorf("%s %s over HTTPS: %s, want not_found", c.method, c.path, overTCP.body)
		}
		if overTCP.status != overH3.status || overTCP.body != overH3.body {
			t.Errorf("%s %s: HTTPS %d %.80q, HTTP/3 %d %.80q", c.method, c.path, overTCP.status, overTCP.body, overH3.status, overH3.body)
		}
		if !maps.EqualFunc(overTCP.header, overH3.header, slices.Equal) {
			t.Errorf("%s %s: headers differ\nHTTPS:  %v\nHTTP/3: %v", c.method, c.path, overTCP.header, overH3.header)
		}
	}
}

// TestOriginCheckAlikeForWebSocketAndWebTransport: one origin check admits
// and refuses the same pages at /connect over WebSocket (TCP) and
// WebTransport (HTTP/3): no Origin (a device, not a browser), the relay's
// own origin and --allow-origin's; not another scheme, host, port or
// spelling of them, nor an opaque ("null") origin.
func TestOriginCheckAlikeForWebSocketAndWebTransport(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.AllowOrigins = []string{"https://clock.example"} })
	host, port, _ := strings.Cut(e.Addr, ":")
	for origin, admitted := range map[string]bool{
		"":                                   true,
		"https://" + e.Addr:                  true,
		"https://clock.example":              true,
		"https://evil.example":               false,
		"http://" + e.Addr:                   false,
		"https://" + host:                    false, // another port
		"https://localhost:" + port:          false, // another name for the same host
		"https://" + e.Addr + "/":            false, // an origin has no path
		"HTTPS://" + strings.ToUpper(host):   false, // browsers send it lower case
		"https://clock.example.evil.example": false,
		"null":                               false,
		"https://clock.example:443":          false,
	} {
		ws, wsBody := dialWebSocketWithOrigin(t, e, origin)
		wt, err := dialWithOrigin(t, e, origin)
		want := http.StatusForbidden
		if admitted {
			want = http.StatusOK // WebSocket's 101, as dialWithOrigin's 200
		}
		if ws != want || wt != want {
			t.Errorf("origin %q: WebSocket %d, WebTransport %d (%v); want %d on both", origin, ws, wt, err, want)
		}
		if ws == http.StatusForbidden && relaytest.ErrorCode(t, wsBody) != "origin_not_allowed" {
			t.Errorf("origin %q: WebSocket refusal %s", origin, wsBody)
		}
	}
}

// dialWebSocketWithOrigin opens a WebSocket to /connect as a page from
// origin would (none if empty) and returns 200 for an upgrade, else the
// refusal's status and body.
func dialWebSocketWithOrigin(t *testing.T, e *relaytest.Relay, origin string) (int, []byte) {
	t.Helper()
	var hdr http.Header
	if origin != "" {
		hdr = http.Header{"Origin": {origin}}
	}
	d := &websocket.Dialer{TLSClientConfig: e.TLS.Clone(), HandshakeTimeout: 5 * time.Second}
	c, rsp, err := d.Dial("wss://"+e.Addr+server.ConnectPath, hdr)
	if err == nil {
		c.Close()
		return http.StatusOK, nil
	}
	if rsp == nil {
		t.Fatalf("origin %q: %v", origin, err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	return rsp.StatusCode, b
}

// TestPageRequestNetHTTPCannotParse: a request URI fasthttp reads but
// net/http cannot parse ("/%zz", a bad escape) is a counted 400
// bad_request in the relay's JSON over HTTPS, not the adaptor's plain 500.
// (HTTP/3 resets such a request's stream: its client cannot send one.)
func TestPageRequestNetHTTPCannotParse(t *testing.T) {
	e := relaytest.Start(t, nil)
	before := metric(t, e, `relay_webhooks_total{outcome="bad_request"}`)
	for _, target := range []string{"/%zz", "/app.js%"} {
		resp, body := rawRequest(t, e, func(c *tls.Conn) {
			io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
		})
		if resp.StatusCode != 400 || relaytest.ErrorCode(t, body) != "bad_request" || resp.Header.Get("Alt-Svc") == "" {
			t.Errorf("GET %s: %d %v %.200s; want 400 bad_request with Alt-Svc", target, resp.StatusCode, resp.Header, body)
		}
	}
	if got := metric(t, e, `relay_webhooks_total{outcome="bad_request"}`) - before; got != 2 {
		t.Errorf("bad_request moved by %v for 2 requests", got)
	}
}
