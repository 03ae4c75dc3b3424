package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
)

// transports runs a subtest per device transport: everything a webhook
// caller sees must be the same whatever the device speaks.
var transports = []struct {
	name string
	opt  device.Options
}{
	{"quic", device.Options{}},
	{"webtransport", device.Options{Transport: transport.KindWebTransport}},
	{"websocket", device.Options{Transport: transport.KindWebSocket}},
}

func TestWebhooksReachEveryTransportAlike(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.Session.MaxInflight = 1 })
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			tok, slow := wire.NewToken(), wire.NewToken()
			e.DialWith(t, tok, echo(tr.name), tr.opt)
			status, body := e.Post(t, "notify", tok, `{"text":"hi"}`)
			var r struct{ Device, Mode string }
			if json.Unmarshal(body, &r); status != 200 || r.Device != tr.name || r.Mode != "notify" {
				t.Fatalf("webhook: %d %s", status, body)
			}

			// A device that holds its one in-flight message: the next
			// caller gets 503, the held one its answer once released.
			b := newBlocker()
			e.DialWith(t, slow, b, tr.opt)
			held := make(chan int, 1)
			go func() { s, _ := e.Post(t, "notify", slow, `{}`); held <- s }()
			<-b.arrived
			if s, body := e.Post(t, "notify", slow, `{}`); s != 503 || relaytest.ErrorCode(t, body) != "busy" {
				t.Fatalf("second message: %d %s, want 503 busy", s, body)
			}
			close(b.release)
			if s := <-held; s != 200 {
				t.Fatalf("held message: %d, want 200", s)
			}
		})
	}
}

func TestRotationAndTakeoverOverWebTransport(t *testing.T) {
	e := relaytest.Start(t, nil)
	wt := device.Options{Transport: transport.KindWebTransport}
	old, next := wire.NewToken(), wire.NewToken()
	c, served := e.DialWith(t, old, echo("wt"), wt)
	if err := c.Rotate(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if s, _ := e.Post(t, "notify", old, `{}`); s != 404 {
		t.Fatalf("old token after rotation: %d", s)
	}
	if s, _ := e.Post(t, "notify", next, `{}`); s != 200 {
		t.Fatalf("new token after rotation: %d", s)
	}
	// A raw QUIC login with the same token takes the WebTransport session over.
	e.Dial(t, next, echo("quic"))
	if err := <-served; !errors.Is(err, device.ErrReplaced) {
		t.Fatalf("WebTransport session ended with %v, want ErrReplaced", err)
	}
	if s, body := e.Post(t, "notify", next, `{}`); s != 200 || !strings.Contains(string(body), `"quic"`) {
		t.Fatalf("after takeover: %d %s", s, body)
	}
}

func TestShutdownSendsWebTransportDevicesAway(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.ReconnectSpread = time.Second })
	_, served := e.DialWith(t, wire.NewToken(), echo("wt"), device.Options{Transport: transport.KindWebTransport})
	e.Stop()
	var ga *device.GoAwayError
	if err := <-served; !errors.As(err, &ga) || ga.Reason != wire.ReasonDraining {
		t.Fatalf("device saw %v; want a draining go-away", err)
	}
}

// h3Client is an HTTP/3 client that trusts the relay.
func h3Client(t *testing.T, e *relaytest.Relay) *http.Client {
	tr := &http3.Transport{TLSClientConfig: e.TLS.Clone()}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr}
}

func TestWebhookOverHTTP3(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.Webhook.MaxBody = 1024 })
	tok := wire.NewToken()
	e.Dial(t, tok, echo("d"))
	client := h3Client(t, e)
	post := func(url, body string) (int, string, *http.Response) {
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp
	}
	status, body, resp := post(e.URL("notify", tok), `{"text":"over h3"}`)
	if status != 200 || !strings.Contains(body, `"over h3"`) || resp.Proto != "HTTP/3.0" {
		t.Fatalf("%s %d %s", resp.Proto, status, body)
	}
	for _, c := range []struct {
		url, body, code string
		status          int
	}{
		{e.URL("notify", wire.NewToken()), `{}`, "no_device", 404},
		{e.URL("notify", tok), `{"t":"` + strings.Repeat("x", 2000) + `"}`, "too_large", 413},
		{e.URL("notify", tok), `{`, "bad_json", 400},
		{e.URL("", tok), `{}`, "mode_missing", 400},
	} {
		status, body, _ := post(c.url, c.body)
		if status != c.status || relaytest.ErrorCode(t, []byte(body)) != c.code {
			t.Errorf("%s: %d %s; want %d %s", c.url, status, body, c.status, c.code)
		}
	}
}

func TestTCPAdvertisesHTTP3(t *testing.T) {
	e := relaytest.Start(t, nil)
	resp, err := e.HTTP.Post(e.URL("notify", wire.NewToken()), "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := strings.Cut(e.Addr, ":")
	if got, want := resp.Header.Get("Alt-Svc"), fmt.Sprintf(`h3=":%s"; ma=86400`, port); got != want {
		t.Fatalf("Alt-Svc %q, want %q", got, want)
	}
}

// dialWithOrigin opens a WebTransport session as a page from origin would
// (none if empty).
func dialWithOrigin(t *testing.T, e *relaytest.Relay, origin string) (int, error) {
	var hdr http.Header
	if origin != "" {
		hdr = http.Header{"Origin": {origin}}
	}
	d := &webtransport.Transport{
		TLSClientConfig: e.TLS.Clone(),
		QUICConfig:      &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rsp, sess, err := d.Dial(ctx, "https://"+e.Addr+server.ConnectPath, hdr)
	if sess != nil {
		sess.CloseWithError(0, "")
	}
	if rsp == nil {
		return 0, err
	}
	return rsp.StatusCode, err
}

func TestWebTransportOriginCheck(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.AllowOrigins = []string{"https://clock.example"} })
	for origin, want := range map[string]int{
		"https://" + e.Addr:     200, // the relay's own page
		"https://clock.example": 200, // --allow-origin
		"https://evil.example":  403,
		"http://" + e.Addr:      403, // not the page's scheme
	} {
		if status, err := dialWithOrigin(t, e, origin); status != want {
			t.Errorf("origin %s: status %d (%v), want %d", origin, status, err, want)
		}
	}
}

func TestDeviceConfigCarriesCertHashes(t *testing.T) {
	hash := sha256.Sum256([]byte("a certificate"))
	e := relaytest.Start(t, func(c *server.Config) { c.CertHashes = func() [][32]byte { return [][32]byte{hash} } })
	status, body := e.Do(t, http.MethodGet, "https://"+e.Addr+server.DeviceConfigPath, "", nil)
	var cfg struct{ CertHashes []string }
	if err := json.Unmarshal(body, &cfg); err != nil || status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if len(cfg.CertHashes) != 1 || cfg.CertHashes[0] != base64.StdEncoding.EncodeToString(hash[:]) {
		t.Fatalf("certHashes %v", cfg.CertHashes)
	}
}

func TestDevicePageIsServed(t *testing.T) {
	e := relaytest.Start(t, nil)
	status, body := e.Do(t, http.MethodGet, "https://"+e.Addr+"/", "", nil)
	if status != 200 || !strings.Contains(string(body), "<canvas") {
		t.Fatalf("GET /: %d %.200s", status, body)
	}
	if status, body := e.Do(t, http.MethodGet, "https://"+e.Addr+"/nope", "", nil); status != 404 || relaytest.ErrorCode(t, body) != "not_found" {
		t.Fatalf("GET /nope: %d %s", status, body)
	}
}
