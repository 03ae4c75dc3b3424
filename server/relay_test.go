package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/redact"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
)

func TestWebhookReachesDevice(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok := wire.NewToken()
	got := make(chan string, 2)
	e.Dial(t, tok, device.HandlerFunc(func(_ context.Context, m wire.Message) (int, []byte) {
		got <- m.Mode + " " + string(m.Body)
		return 200, []byte(`{"shown":true}`)
	}))
	body := `{"force":true,"icon":36,"text":"New mail","color":[255,255,255]}`

	status, reply := e.Post(t, "notify", tok, body)
	if status != 200 || string(reply) != `{"shown":true}` {
		t.Fatalf("query token: %d %s; want 200 and the device's reply", status, reply)
	}
	if g := <-got; g != "notify "+body {
		t.Fatalf("device got %q", g)
	}

	// The token may travel in the Authorization header instead.
	status, reply = e.Do(t, http.MethodPost, e.URL("app", ""), body, http.Header{"Authorization": {"Bearer " + tok}})
	if status != 200 || string(reply) != `{"shown":true}` {
		t.Fatalf("bearer token: %d %s", status, reply)
	}
	if g := <-got; g != "app "+body {
		t.Fatalf("device got %q", g)
	}
}

func TestEveryModeIsDelivered(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok := wire.NewToken()
	e.Dial(t, tok, echo("d"))
	for _, mode := range wire.Modes {
		status, reply := e.Post(t, mode, tok, `{"x":1}`)
		var r struct{ Mode string }
		if json.Unmarshal(reply, &r); status != 200 || r.Mode != mode {
			t.Errorf("mode %s: %d %s", mode, status, reply)
		}
	}
}

func TestRefusals(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.Webhook.MaxBody = 1024 })
	tok := wire.NewToken()
	e.Dial(t, tok, echo("d"))
	other := wire.NewToken()
	cases := []struct {
		name, method, url, body string
		hdr                     http.Header
		status                  int
		code                    string
	}{
		{"no mode", "POST", e.URL("", tok), `{}`, nil, 400, "mode_missing"},
		{"unknown mode", "POST", e.URL("rebooot", tok), `{}`, nil, 400, "bad_mode"},
		{"no token", "POST", e.URL("notify", ""), `{}`, nil, 400, "token_missing"},
		{"short token", "POST", e.URL("notify", "abc"), `{}`, nil, 400, "bad_token"},
		{"weak token", "POST", e.URL("notify", strings.Repeat("ab", 15)), `{}`, nil, 400, "bad_token"},
		{"bad chars", "POST", e.URL("notify", tok[:30]+"!!!!"), `{}`, nil, 400, "bad_token"},
		{"not bearer", "POST", e.URL("notify", ""), `{}`, http.Header{"Authorization": {"Basic " + tok}}, 400, "bad_token"},
		{"conflict", "POST", e.URL("notify", tok), `{}`, http.Header{"Authorization": {"Bearer " + other}}, 400, "token_conflict"},
		{"token twice", "POST", e.URL("notify", tok) + "&token=" + other, `{}`, nil, 400, "duplicate_param"},
		{"mode twice", "POST", e.URL("notify", tok) + "&mode=reboot", `{}`, nil, 400, "duplicate_param"},
		{"Authorization twice", "POST", e.URL("notify", ""), `{}`, http.Header{"Authorization": {"Bearer " + tok, "Bearer " + other}}, 400, "duplicate_param"},
		{"bad json", "POST", e.URL("notify", tok), `{"text":`, nil, 400, "bad_json"},
		{"no device", "POST", e.URL("notify", other), `{}`, nil, 404, "no_device"},
		{"GET of a write", "GET", e.URL("notify", tok), ``, nil, 405, "method_not_allowed"},
		{"PUT", "PUT", e.URL("notify", tok), `{}`, nil, 405, "method_not_allowed"},
		{"other path", "POST", "https://" + e.Addr + "/api/notify?mode=notify&token=" + tok, `{}`, nil, 404, "not_found"},
		{"too large", "POST", e.URL("notify", tok), `{"text":"` + strings.Repeat("x", 1100) + `"}`, nil, 413, "too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := e.Do(t, c.method, c.url, c.body, c.hdr)
			if status != c.status {
				t.Fatalf("status %d (%s), want %d", status, body, c.status)
			}
			if code := relaytest.ErrorCode(t, body); code != c.code {
				t.Fatalf("code %q, want %q", code, c.code)
			}
		})
	}
	// A body just under the limit still goes through.
	if status, body := e.Post(t, "notify", tok, `{"t":"`+strings.Repeat("x", 1000)+`"}`); status != 200 {
		t.Fatalf("body under the limit: %d %s", status, body)
	}
}

// blocker holds every message until released, and reports each arrival.
type blocker struct {
	arrived chan string
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{arrived: make(chan string, 100), release: make(chan struct{})}
}

func (b *blocker) HandleMessage(_ context.Context, m wire.Message) (int, []byte) {
	b.arrived <- string(m.Body)
	<-b.release
	return 200, []byte(`{"ok":true}`)
}

func TestBusyDeviceGets503(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.Session.MaxInflight = 2 })
	tok := wire.NewToken()
	b := newBlocker()
	e.Dial(t, tok, b)

	var wg sync.WaitGroup
	statuses := make(chan int, 2)
	for i := range 2 {
		wg.Go(func() {
			s, _ := e.Post(t, "notify", tok, fmt.Sprintf(`{"n":%d}`, i))
			statuses <- s
		})
	}
	<-b.arrived
	<-b.arrived // both in flight now
	req, _ := http.NewRequest("POST", e.URL("notify", tok), strings.NewReader(`{"n":3}`))
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third message: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(b.release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("held message answered %d, want 200", s)
		}
	}
	// Capacity is back once the messages are answered.
	if s, body := e.Post(t, "notify", tok, `{}`); s != 200 {
		t.Fatalf("after release: %d %s", s, body)
	}
}

// TestSilentDeviceGets504 runs over real sockets for every transport; the
// timeout's exact instant is session.TestAckTimeout's, in virtual time.
// Nothing else runs on this relay, so its short ack timeout bounds no
// other answer.
func TestSilentDeviceGets504(t *testing.T) {
	const ack = time.Second
	e := relaytest.Start(t, func(c *server.Config) { c.Webhook.AckTimeout = ack })
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			tok := wire.NewToken()
			b := newBlocker()
			defer close(b.release)
			e.DialWith(t, tok, b, tr.opt)
			began := time.Now()
			status, body := e.Post(t, "notify", tok, `{}`)
			if status != 504 || relaytest.ErrorCode(t, body) != "timeout" {
				t.Fatalf("%d %s; want 504 timeout", status, body)
			}
			if d := time.Since(began); d < ack {
				t.Fatalf("504 after %v, before the ack timeout %v", d, ack)
			}
		})
	}
}

func TestDeviceVanishingGets502(t *testing.T) {
	e := relaytest.Start(t, nil)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			tok := wire.NewToken()
			b := newBlocker()
			defer close(b.release)
			c, _ := e.DialWith(t, tok, b, tr.opt)
			go func() {
				<-b.arrived
				c.Close()
			}()
			status, body := e.Post(t, "notify", tok, `{}`)
			if status != 502 || relaytest.ErrorCode(t, body) != "device_gone" {
				t.Fatalf("%d %s; want 502 device_gone", status, body)
			}
			// The session is gone from the router: the next webhook is a 404.
			relaytest.WaitFor(t, func() bool { return e.Router().Lookup(router.KeyOf([]byte(tok))) == nil })
			if status, body := e.Post(t, "notify", tok, `{}`); status != 404 {
				t.Fatalf("after disconnect: %d %s", status, body)
			}
		})
	}
}

func TestDeviceErrorStatusPassesThrough(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok := wire.NewToken()
	e.Dial(t, tok, device.HandlerFunc(func(context.Context, wire.Message) (int, []byte) {
		return 502, []byte(`{"error":"clock unreachable","code":"clock_unreachable"}`)
	}))
	status, body := e.Post(t, "notify", tok, `{}`)
	if status != 502 || relaytest.ErrorCode(t, body) != "clock_unreachable" {
		t.Fatalf("%d %s; want the device's 502", status, body)
	}
}

func TestRotation(t *testing.T) {
	e := relaytest.Start(t, nil)
	old, next := wire.NewToken(), wire.NewToken()
	c, _ := e.Dial(t, old, echo("d"))
	if s, _ := e.Post(t, "notify", old, `{}`); s != 200 {
		t.Fatalf("before rotation: %d", s)
	}
	if err := c.Rotate(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	// Rotate returned, so the relay has switched: no waiting.
	if s, body := e.Post(t, "notify", old, `{}`); s != 404 || relaytest.ErrorCode(t, body) != "no_device" {
		t.Fatalf("old token after rotation: %d %s", s, body)
	}
	if s, body := e.Post(t, "notify", next, `{}`); s != 200 {
		t.Fatalf("new token after rotation: %d %s", s, body)
	}

	// Refusals leave the session on its current token.
	var re *device.RefusedError
	if err := c.Rotate(context.Background(), "short"); !errors.As(err, &re) || re.Reason != wire.ReasonToken {
		t.Fatalf("rotate to a malformed token: %v", err)
	}
	taken := wire.NewToken()
	e.Dial(t, taken, echo("other"))
	if err := c.Rotate(context.Background(), taken); !errors.As(err, &re) || re.Reason != wire.ReasonInUse {
		t.Fatalf("rotate to a token in use: %v", err)
	}
	if s, body := e.Post(t, "notify", next, `{}`); s != 200 || !strings.Contains(string(body), `"device":"d"`) {
		t.Fatalf("after refused rotations: %d %s", s, body)
	}
	if s, body := e.Post(t, "notify", taken, `{}`); s != 200 || !strings.Contains(string(body), `"device":"other"`) {
		t.Fatalf("the other device lost its token: %d %s", s, body)
	}
}

func TestTakeover(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok := wire.NewToken()
	_, first := e.Dial(t, tok, echo("first"))
	if _, body := e.Post(t, "notify", tok, `{}`); !strings.Contains(string(body), `"first"`) {
		t.Fatalf("before takeover: %s", body)
	}
	e.Dial(t, tok, echo("second"))
	if err := <-first; !errors.Is(err, device.ErrReplaced) {
		t.Fatalf("first session ended with %v, want ErrReplaced", err)
	}
	if s, body := e.Post(t, "notify", tok, `{}`); s != 200 || !strings.Contains(string(body), `"second"`) {
		t.Fatalf("after takeover: %d %s", s, body)
	}
	if n := e.Router().Len(); n != 1 {
		t.Fatalf("router holds %d sessions, want 1", n)
	}
}

func TestLoginRefused(t *testing.T) {
	e := relaytest.Start(t, nil)
	for _, tok := range []string{"", "short", strings.Repeat("ab", 15), strings.Repeat("x", 129)} {
		_, err := device.Dial(context.Background(), e.Addr, tok, device.Options{TLS: e.TLS})
		var re *device.RefusedError
		if !errors.As(err, &re) || re.Reason != wire.ReasonToken || !re.Permanent() {
			t.Errorf("token %q: %v; want a permanent bad_token refusal", tok, err)
		}
	}
}

// TestThousandMessagesExactlyOnce sends 1,000 webhooks spread over 100
// devices and checks each arrives exactly once, at the right device.
func TestThousandMessagesExactlyOnce(t *testing.T) {
	const devices, messages = 100, 1000
	// 1,000 webhooks at once from one address: routing, not limits, is
	// under test here (server/limits_test.go tests those).
	e := relaytest.Start(t, relaytest.NoLimits)
	tokens := make([]string, devices)
	var mu sync.Mutex
	seen := make(map[int][]int) // message id -> devices that got it
	for d := range devices {
		tokens[d] = wire.NewToken()
		e.Dial(t, tokens[d], device.HandlerFunc(func(_ context.Context, msg wire.Message) (int, []byte) {
			var m struct{ ID int }
			if err := json.Unmarshal(msg.Body, &m); err != nil {
				return 400, []byte(`{"error":"bad"}`)
			}
			mu.Lock()
			seen[m.ID] = append(seen[m.ID], d)
			mu.Unlock()
			return 200, []byte(fmt.Sprintf(`{"id":%d,"device":%d}`, m.ID, d))
		}))
	}
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for id := range ids {
				s, body := e.Post(t, "notify", tokens[id%devices], fmt.Sprintf(`{"id":%d,"text":"m"}`, id))
				if want := fmt.Sprintf(`{"id":%d,"device":%d}`, id, id%devices); s != 200 || string(body) != want {
					t.Errorf("message %d: %d %s, want 200 %s", id, s, body, want)
				}
			}
		})
	}
	for id := range messages {
		ids <- id
	}
	close(ids)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != messages {
		t.Fatalf("%d distinct messages arrived, want %d", len(seen), messages)
	}
	for id, got := range seen {
		if len(got) != 1 || got[0] != id%devices {
			t.Errorf("message %d arrived at devices %v, want exactly [%d]", id, got, id%devices)
		}
	}
}

func TestAdminEndpoints(t *testing.T) {
	e := relaytest.Start(t, nil)
	admin := "http://" + e.AdminAddr().String()
	for _, p := range []string{"/healthz", "/readyz", "/debug/pprof/", "/debug/pprof/heap"} {
		resp, err := http.Get(admin + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	// Profiles never appear on the public port.
	if status, _ := e.Do(t, http.MethodGet, "https://"+e.Addr+"/debug/pprof/", "", nil); status != 404 {
		t.Errorf("public /debug/pprof/: %d, want 404", status)
	}
}

func TestShutdownSendsDevicesAway(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.ReconnectSpread = 3 * time.Second })
	_, served := e.Dial(t, wire.NewToken(), echo("d"))
	e.Stop()
	var ga *device.GoAwayError
	if err := <-served; !errors.As(err, &ga) || ga.Reason != wire.ReasonDraining || ga.ReconnectAfter >= 3*time.Second {
		t.Fatalf("device saw %v; want a draining go-away within the spread", err)
	}
}

// TestLogsHoldNoSecrets: at debug level, after devices on every kind of
// connection (QUIC, stock clocks on MQTT and MQTT over TLS) logged in,
// rotated, were refused, taken over and drained, and webhooks carried
// payloads both ways, the relay's log holds no token, user name, client
// id, topic prefix, payload or address.
func TestLogsHoldNoSecrets(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) {
		relaytest.MQTT(c)
		c.ReconnectSpread = 100 * time.Millisecond // the clocks' drain, quickly
	})
	tok, next := wire.NewToken(), wire.NewToken()
	c, _ := e.Dial(t, tok, echo("d"))
	body := `{"text":"secret-body-` + wire.NewToken() + `"}`
	e.Post(t, "notify", tok, body)
	c.Rotate(context.Background(), next)
	e.Post(t, "notify", next, body)
	e.Post(t, "notify", tok, body)
	secrets := busyClocks(t, e, next) // takes next from the QUIC device
	e.Stop()                          // drains the clocks
	logs := e.Logs.String()
	if logs == "" {
		t.Fatal("the relay logged nothing at debug level; the scan would prove nothing")
	}
	for _, want := range []string{"transport=mqtt", "mqtt connection closed", "reason=replaced", "reason=drain", "device login refused"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q: the MQTT run did not happen as the scan assumes:\n%s", want, logs)
		}
	}
	for _, secret := range append(secrets, tok, next, "secret-body", "127.0.0.1") {
		if strings.Contains(logs, secret) {
			t.Errorf("relay log contains %q:\n%s", secret, logs)
		}
	}
}

// TestLogsHoldNoWebSocketAddress: a WebSocket session's end is its TCP
// connection's error, which names both ends ("read tcp
// 127.0.0.1:8443->127.0.0.1:37380: i/o timeout"); the relay's log of it,
// at debug level, names neither, on the idle and the reset paths.
func TestLogsHoldNoWebSocketAddress(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.Session.IdleTimeout = 300 * time.Millisecond })
	idle := dialRawWebSocket(t, e).(*rawWSSession)
	rawLogin(t, idle, wire.NewToken())
	<-idle.done // the relay closed it: idle
	reset := dialRawWebSocket(t, e).(*rawWSSession)
	tok := wire.NewToken()
	rawLogin(t, reset, tok)
	tc := reset.c.NetConn().(*tls.Conn).NetConn().(*net.TCPConn)
	tc.SetLinger(0) // the close is a RST
	tc.Close()
	relaytest.WaitFor(t, func() bool { return e.Router().Lookup(router.KeyOf([]byte(tok))) == nil })
	e.Stop()
	logs := e.Logs.String()
	if n := strings.Count(logs, "device session closed"); n < 2 || !strings.Contains(logs, "transport=websocket") {
		t.Fatalf("the log lacks the two WebSocket session ends the scan is about:\n%s", logs)
	}
	if !strings.Contains(logs, redact.Placeholder) {
		t.Errorf("no cause named an address the relay redacted: the scan proves nothing:\n%s", logs)
	}
	if strings.Contains(logs, "127.0.0.1") {
		t.Errorf("relay log names an address:\n%s", logs)
	}
}

func TestMetrics(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok, wtTok := wire.NewToken(), wire.NewToken()
	c, _ := e.Dial(t, tok, echo("q"))
	e.DialWith(t, wtTok, echo("w"), device.Options{Transport: transport.KindWebTransport})
	e.Post(t, "notify", tok, `{"text":"m"}`)
	e.Post(t, "notify", tok, `{"text":"m"}`)
	e.Post(t, "notify", wire.NewToken(), `{}`)
	e.Post(t, "notify", tok, `{`)
	c.Rotate(context.Background(), wire.NewToken())

	resp, err := http.Get("http://" + e.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	for _, want := range []string{
		`relay_webhooks_total{outcome="delivered"} 2`,
		`relay_webhooks_total{outcome="no_device"} 1`,
		`relay_webhooks_total{outcome="bad_json"} 1`,
		`relay_devices_connected{transport="quic"} 1`,
		`relay_devices_connected{transport="webtransport"} 1`,
		`relay_logins_total{transport="webtransport"} 1`,
		`relay_rotations_total 1`,
		`relay_quic_connections_total{alpn="awtrix-relay/1"} 1`,
		`relay_webhook_seconds_count 2`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, tok) || strings.Contains(text, "127.0.0.1") {
		t.Error("/metrics holds a token or an address")
	}
}

// metric reads one series from the admin listener's /metrics.
func metric(t *testing.T, e *relaytest.Relay, name string) float64 {
	t.Helper()
	return e.Metric(t, name)
}
