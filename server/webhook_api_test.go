package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go/http3"
)

// echoed is what echo("d") answers: the message as the device got it.
type echoed struct {
	Mode  string          `json:"mode"`
	Query string          `json:"query"`
	Body  json.RawMessage `json:"body"`
}

// call sends one request over client and returns the status, the Allow
// header and the body.
func call(t *testing.T, client *http.Client, method, url, contentType, body string) (int, string, []byte) {
	t.Helper()
	r := sendBody(t, client, method, url, contentType, body)
	return r.status, r.header.Get("Allow"), r.body
}

// TestWebhookModesAndBodies: every mode reaches the device as posted;
// the reads may be GETs, on HTTPS and HTTP/3 alike, and reach it with an
// empty body; a caller that cannot build JSON is met halfway (text/plain,
// forms) or told how to fix it; AWTRIX 3's name of a custom app travels in
// the message's query; parameters the relay does not know are ignored.
func TestWebhookModesAndBodies(t *testing.T) {
	// Far more webhooks to one token than its rate allows.
	e := relaytest.Start(t, func(c *server.Config) { c.Webhook.PerToken = limit.Rate{} })
	tok := wire.NewToken()
	e.Dial(t, tok, echo("d"))
	h3 := &http3.Transport{TLSClientConfig: e.TLS.Clone()}
	defer h3.Close()
	clients := map[string]*http.Client{"HTTPS": e.HTTP, "HTTP/3": {Transport: h3}}
	url := func(mode, extra string) string { return e.URL(mode, tok) + extra }
	got := func(t *testing.T, b []byte) echoed {
		t.Helper()
		var m echoed
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("device reply %s: %v", b, err)
		}
		return m
	}

	t.Run("every mode", func(t *testing.T) {
		for _, mode := range wire.Modes {
			status, _, b := call(t, e.HTTP, "POST", url(mode, ""), "application/json", `{"k":1}`)
			if m := got(t, b); status != 200 || m.Mode != mode || string(m.Body) != `{"k":1}` {
				t.Errorf("mode %s: %d %s", mode, status, b)
			}
		}
	})
	for name, client := range clients {
		t.Run("reads over "+name, func(t *testing.T) {
			for _, mode := range wire.Modes {
				status, allow, b := call(t, client, "GET", url(mode, ""), "", "")
				if !wire.IsRead(mode) {
					if status != 405 || allow != "POST" || relaytest.ErrorCode(t, b) != "method_not_allowed" {
						t.Errorf("GET mode=%s: %d Allow %q %s; want 405, Allow POST", mode, status, allow, b)
					}
					continue
				}
				if m := got(t, b); status != 200 || m.Mode != mode || string(m.Body) != "null" {
					t.Errorf("GET mode=%s: %d %s; want the device's answer to an empty body", mode, status, b)
				}
			}
			status, allow, b := call(t, client, "PUT", url("stats", ""), "", "")
			if status != 405 || allow != "GET, POST" {
				t.Errorf("PUT mode=stats: %d Allow %q %s", status, allow, b)
			}
			// A read posted with an empty body is the same read.
			status, _, b = call(t, client, "POST", url("settings", ""), "", "")
			if m := got(t, b); status != 200 || string(m.Body) != "null" {
				t.Errorf("POST mode=settings with no body: %d %s", status, b)
			}
			// name travels in the query.
			status, _, b = call(t, client, "POST", url("custom", "&name=weather"), "application/json", `[{"text":"1"},{"text":"2"}]`)
			if m := got(t, b); status != 200 || m.Query != "name=weather" || string(m.Body) != `[{"text":"1"},{"text":"2"}]` {
				t.Errorf("mode=custom&name=weather: %d %s", status, b)
			}
		})
	}

	t.Run("bodies", func(t *testing.T) {
		for _, c := range []struct {
			name, mode, contentType, body string
			status                        int
			want                          string // the body the device got, or the error code
		}{
			{"JSON", "notify", "application/json", `{"text":"hi"}`, 200, `{"text":"hi"}`},
			{"JSON sent as a form (curl -d)", "notify", "application/x-www-form-urlencoded", `{"text":"hi"}`, 200, `{"text":"hi"}`},
			{"JSON with no content type", "notify", "", `{"text":"hi"}`, 200, `{"text":"hi"}`},
			{"text for notify", "notify", "text/plain; charset=utf-8", `Mail from "Bob"` + "\nRe: hi", 200, `{"text":"Mail from \"Bob\"\nRe: hi"}`},
			{"text that is a number", "notify", "text/plain", `42`, 200, `{"text":"42"}`},
			{"a JSON object as text", "notify", "text/plain", `{"text":"hi","rainbow":true}`, 200, `{"text":"hi","rainbow":true}`},
			{"form for notify", "notify", "application/x-www-form-urlencoded", `text=Door+open&duration=5&rainbow=true&color=%23FF0000`, 200,
				`{"color":"#FF0000","duration":5,"rainbow":true,"text":"Door open"}`},
			{"RTTTL as text", "rtttl", "text/plain", `tetris:d=4,o=5,b=160:e6,8b,8c6`, 200, `"tetris:d=4,o=5,b=160:e6,8b,8c6"`},
			{"R2D2 as text", "r2d2", "text/plain", `Hello`, 200, `"Hello"`},
			{"RTTTL as a JSON string", "rtttl", "application/json", `"tetris:d=4"`, 200, `"tetris:d=4"`},
			{"broken JSON for notify", "notify", "application/json", `{"text":"say "hi""}`, 400, "bad_json"},
			{"broken JSON elsewhere", "settings", "text/plain", `BRI=100`, 400, "bad_json"},
			{"form field notify does not take", "notify", "application/x-www-form-urlencoded", `text=x&force=true`, 400, "bad_form"},
			{"form without text", "notify", "application/x-www-form-urlencoded", `duration=5`, 400, "bad_form"},
			{"form with a bad number", "notify", "application/x-www-form-urlencoded", `text=x&duration=long`, 400, "bad_form"},
		} {
			status, _, b := call(t, e.HTTP, "POST", url(c.mode, ""), c.contentType, c.body)
			if status != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, status, b, c.status)
				continue
			}
			if status != 200 {
				if code := relaytest.ErrorCode(t, b); code != c.want {
					t.Errorf("%s: code %s, want %s", c.name, code, c.want)
				}
				continue
			}
			var want, have any
			json.Unmarshal([]byte(c.want), &want)
			json.Unmarshal(got(t, b).Body, &have)
			if wb, _ := json.Marshal(want); string(wb) != string(mustJSON(t, have)) {
				t.Errorf("%s: the device got %s, want %s", c.name, got(t, b).Body, c.want)
			}
		}
		// The fix for IFTTT is in the answer.
		_, _, b := call(t, e.HTTP, "POST", url("notify", ""), "application/json", `{"text":"say "hi""}`)
		if !strings.Contains(string(b), "text/plain") {
			t.Errorf("bad_json for notify does not say how to fix it: %s", b)
		}
	})

	t.Run("parameters", func(t *testing.T) {
		for _, c := range []struct {
			name, url string
			status    int
			code      string
		}{
			{"name on another mode", url("notify", "&name=weather"), 400, "bad_param"},
			{"empty name", url("custom", "&name="), 400, "bad_param"},
			{"name with a slash", url("custom", "&name=a%2Fb"), 400, "bad_param"},
			{"name too long", url("custom", "&name="+strings.Repeat("n", 65)), 400, "bad_param"},
			{"unknown parameters are ignored", url("notify", "&utm_source=ifttt&lt=5"), 200, ""},
		} {
			status, _, b := call(t, e.HTTP, "POST", c.url, "application/json", `{}`)
			if status != c.status || c.code != "" && relaytest.ErrorCode(t, b) != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.name, status, b, c.status, c.code)
			}
			if status == 200 && got(t, b).Query != "" {
				t.Errorf("%s: the device got query %q", c.name, got(t, b).Query)
			}
		}
	})
}

// mustJSON marshals v, which came from json.Unmarshal.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWebhookToAnOlderDevice: a device that speaks protocol version 1
// still gets every webhook it can: a custom app's name it could not
// receive is answered 501 device_outdated by the relay, and never sent.
func TestWebhookToAnOlderDevice(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok := wire.NewToken()
	got := make(chan wire.Message, 4)
	e.DialWith(t, tok, device.HandlerFunc(func(_ context.Context, m wire.Message) (int, []byte) {
		got <- wire.Message{Mode: m.Mode, Query: m.Query, Timeout: m.Timeout}
		return 200, []byte(`{}`)
	}), device.Options{Version: 1})
	if status, b := e.Post(t, "notify", tok, `{"text":"hi"}`); status != 200 {
		t.Fatalf("notify to a version 1 device: %d %s", status, b)
	}
	if m := <-got; m.Mode != "notify" || m.Query != "" || m.Timeout != 0 {
		t.Fatalf("a version 1 device got %+v", m)
	}
	status, b := e.Do(t, "POST", e.URL("custom", tok)+"&name=weather", `{"text":"hi"}`, nil)
	if status != 501 || relaytest.ErrorCode(t, b) != "device_outdated" {
		t.Fatalf("a name for a version 1 device: %d %s, want 501 device_outdated", status, b)
	}
	select {
	case m := <-got:
		t.Fatalf("the device got %+v", m)
	default:
	}
}

// TestDeviceLearnsTheRelaysTimeout: at protocol version 2 the device knows
// how long the relay waits for it, and its handler's context ends at 90%
// of that, so that a slow clock gets its own error in before the relay's
// 504.
func TestDeviceLearnsTheRelaysTimeout(t *testing.T) {
	const ack = 2 * time.Second
	e := relaytest.Start(t, func(c *server.Config) { c.Webhook.AckTimeout = ack })
	tok := wire.NewToken()
	left := make(chan time.Duration, 1)
	e.Dial(t, tok, device.HandlerFunc(func(ctx context.Context, m wire.Message) (int, []byte) {
		dl, ok := ctx.Deadline()
		if !ok || m.Timeout <= 0 || m.Timeout > ack {
			left <- -1
		} else {
			left <- time.Until(dl)
		}
		<-ctx.Done()
		return 502, []byte(`{"error":"clock too slow","code":"clock_timeout"}`)
	}))
	status, b := e.Post(t, "notify", tok, `{}`)
	if status != 502 || relaytest.ErrorCode(t, b) != "clock_timeout" {
		t.Fatalf("a handler that runs out of time: %d %s; want its own 502 before the relay's 504", status, b)
	}
	if d := <-left; d <= ack*8/10 || d > ack*9/10 {
		t.Fatalf("the handler had %v; want 90%% of the relay's %v, less the trip", d, ack)
	}
}
