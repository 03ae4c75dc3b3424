package awtrix

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/wire"
)

// seen is one request as the fake clock received it.
type seen struct {
	method, path, rawQuery, name, contentType, auth string
	body                                            string
}

// fakeClock is an AWTRIX clock on 127.0.0.1:0 that records every request
// and answers with a fixed status and body.
type fakeClock struct {
	srv *httptest.Server

	mu   sync.Mutex // guards reqs
	reqs []seen
}

func newClock(t *testing.T, status int, reply string) *fakeClock {
	t.Helper()
	c := &fakeClock{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("clock: reading body: %v", err)
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, seen{
			method:      r.Method,
			path:        r.URL.Path,
			rawQuery:    r.URL.RawQuery,
			name:        r.URL.Query().Get("name"),
			contentType: r.Header.Get("Content-Type"),
			auth:        r.Header.Get("Authorization"),
			body:        string(b),
		})
		c.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *fakeClock) requests() []seen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]seen(nil), c.reqs...)
}

// only returns the single request the clock got.
func (c *fakeClock) only(t *testing.T) seen {
	t.Helper()
	r := c.requests()
	if len(r) != 1 {
		t.Fatalf("clock got %d requests, want 1: %+v", len(r), r)
	}
	return r[0]
}

func newForwarder(t *testing.T, url string, api int) *Forwarder {
	t.Helper()
	f, err := New(url, api, nil)
	if err != nil {
		t.Fatalf("New(%q, %d): %v", url, api, err)
	}
	return f
}

// replyJSON is what HandleMessage's reply decodes to.
type replyJSON struct {
	OK          bool            `json:"ok"`
	Error       string          `json:"error"`
	Code        string          `json:"code"`
	ClockStatus int             `json:"clock_status"`
	ClockReply  json.RawMessage `json:"clock_reply"`
	Truncated   bool            `json:"clock_reply_truncated"`
}

func decodeReply(t *testing.T, b []byte) replyJSON {
	t.Helper()
	var r replyJSON
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, b)
	}
	return r
}

func handle(t *testing.T, f *Forwarder, mode, body string) (int, replyJSON, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	st, b := f.HandleMessage(ctx, wire.Message{Mode: mode, Body: []byte(body)})
	return st, decodeReply(t, b), b
}

// Bodies from the AWTRIX 2 documentation, one per mode.
var v2Bodies = map[string]string{
	"basics":       `{"timer":"00:00:10","color":[255,0,0],"count":10,"text":"AWTRIX"}`,
	"settings":     `{"Brightness":100}`,
	"draw":         `{"repeat":2,"draw":[{"type":"fill","color":[100,100,100]},{"type":"text","string":"Hello","position":[0,0],"color":[255,0,0]},{"type":"show"}]}`,
	"app":          `{"name":"test","force":false,"icon":6,"text":"Awtrix","color":[255,0,0]}`,
	"notify":       `{"force":true,"text":"Awesome","icon":1,"color":[0,255,255],"count":2}`,
	"customapp":    `{"name":"Weather","text":"21 C","icon":6}`,
	"temporaryapp": `{"name":"TestApp","lifetime":5,"icon":6,"text":"Totally Awesome","color":[60,255,0]}`,
}

func TestV2EveryModePassesThrough(t *testing.T) {
	for mode, body := range v2Bodies {
		t.Run(mode, func(t *testing.T) {
			clock := newClock(t, http.StatusOK, "")
			f := newForwarder(t, clock.srv.URL, 2)
			st, r, _ := handle(t, f, mode, body)
			if st != http.StatusOK || !r.OK || r.ClockStatus != 200 {
				t.Fatalf("status %d reply %+v", st, r)
			}
			got := clock.only(t)
			want := seen{method: "POST", path: "/api/v3/" + mode, contentType: "application/json", body: body}
			if got != want {
				t.Errorf("clock got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestV3Mapping(t *testing.T) {
	tests := []struct {
		name, mode, body string
		path, query      string // query: the raw query string
		clockBody        string // "" means an empty body and no Content-Type
	}{
		{"notify", "notify", v2Bodies["notify"], "/api/notify", "", v2Bodies["notify"]},
		{"settings", "settings", `{"BRI":40,"ATIME":7}`, "/api/settings", "", `{"BRI":40,"ATIME":7}`},
		{"app", "app", v2Bodies["app"], "/api/custom", "name=test", v2Bodies["app"]},
		{"customapp", "customapp", v2Bodies["customapp"], "/api/custom", "name=Weather", v2Bodies["customapp"]},
		{"temporaryapp", "temporaryapp", v2Bodies["temporaryapp"], "/api/custom", "name=TestApp", v2Bodies["temporaryapp"]},
		{"custom name escaped", "customapp", `{"name":"a b&c=d/é","text":"x"}`, "/api/custom", "name=a+b%26c%3Dd%2F%C3%A9", `{"name":"a b&c=d/é","text":"x"}`},
		{"remove app", "temporaryapp", `{"remove":"TestApp"}`, "/api/custom", "name=TestApp", ""},
		{"power on", "basics", `{"power": true}`, "/api/power", "", `{"power":true}`},
		{"power off", "basics", `{"power":false}`, "/api/power", "", `{"power":false}`},
		{"switchTo", "basics", `{"switchTo":"Facebook"}`, "/api/switch", "", `{"name":"Facebook"}`},
		{"next app", "basics", `{"app":"next"}`, "/api/nextapp", "", ""},
		{"previous app", "basics", `{"app":"previous"}`, "/api/previousapp", "", ""},
		{"prev app", "basics", `{"app":"prev"}`, "/api/previousapp", "", ""},
		{"back (AWTRIX 2 word)", "basics", `{"app":"back"}`, "/api/previousapp", "", ""},
		{"draw", "draw", v2Bodies["draw"], "/api/notify", "", `{"draw":[{"df":[0,0,32,8,"#646464"]},{"dt":[0,0,"Hello","#FF0000"]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock(t, http.StatusOK, "OK")
			f := newForwarder(t, clock.srv.URL, 3)
			st, raw := f.HandleMessage(t.Context(), wire.Message{Mode: tt.mode, Body: []byte(tt.body)})
			if want := `{"ok":true,"clock_status":200,"clock_reply":"OK"}`; st != http.StatusOK || string(raw) != want {
				t.Fatalf("got %d %s, want 200 %s", st, raw, want)
			}
			got := clock.only(t)
			want := seen{method: "POST", path: tt.path, rawQuery: tt.query, body: tt.clockBody}
			if tt.clockBody != "" {
				want.contentType = "application/json"
			}
			got.name = "" // checked through rawQuery
			if got != want {
				t.Errorf("clock got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestV3CustomAppNameIsUnescapedByTheClock(t *testing.T) {
	clock := newClock(t, http.StatusOK, "OK")
	f := newForwarder(t, clock.srv.URL, 3)
	const name = "my app?&name=evil#x"
	body, _ := json.Marshal(map[string]string{"name": name, "text": "hi"})
	if st, r, _ := handle(t, f, "customapp", string(body)); st != http.StatusOK {
		t.Fatalf("status %d %+v", st, r)
	}
	if got := clock.only(t).name; got != name {
		t.Errorf("clock saw name %q, want %q", got, name)
	}
}

// TestDrawFullExample translates fill, text, pixel and a bitmap whose RGB565
// pixels must arrive as RGB888, dropping show, wait and exit.
func TestDrawFullExample(t *testing.T) {
	clock := newClock(t, http.StatusOK, "OK")
	f := newForwarder(t, clock.srv.URL, 3)
	body := `{"repeat":1,"draw":[
		{"type":"fill","color":[100,100,100]},
		{"type":"text","string":"Hello","position":[1,1],"color":[255,0,0]},
		{"type":"pixel","position":[31,7],"color":[0,255,0]},
		{"type":"bmp","position":[24,0],"size":[2,2],"data":[63488,2016,31,65535]},
		{"type":"show"},
		{"type":"wait","ms":500},
		{"type":"exit"}]}`
	if st, r, _ := handle(t, f, "draw", body); st != http.StatusOK || !r.OK {
		t.Fatalf("status %d %+v", st, r)
	}
	got := clock.only(t)
	const want = `{"draw":[` +
		`{"df":[0,0,32,8,"#646464"]},` +
		`{"dt":[1,1,"Hello","#FF0000"]},` +
		`{"dp":[31,7,"#00FF00"]},` +
		`{"db":[24,0,2,2,[16711680,65280,255,16777215]]}]}`
	if got.path != "/api/notify" || got.body != want {
		t.Errorf("clock got %s %s\nwant /api/notify %s", got.path, got.body, want)
	}
}

func TestBadMessagesNeverReachTheClock(t *testing.T) {
	tests := []struct {
		name      string
		api       int
		mode      string
		body      string
		code      string
		errSubstr string
	}{
		{"unknown mode v2", 2, "reboot", `{}`, "bad_request", "unknown mode"},
		{"unknown mode v3", 3, "reboot", `{}`, "bad_request", "unknown mode"},
		{"mode is case sensitive", 3, "Notify", `{}`, "bad_request", "unknown mode"},
		{"invalid JSON v2", 2, "notify", `{"text":`, "bad_request", "JSON"},
		{"invalid JSON v3", 3, "notify", `{"text":`, "bad_request", "JSON"},
		{"empty body", 3, "settings", ``, "bad_request", "JSON"},
		{"missing name app", 3, "app", `{"text":"x"}`, "bad_request", "name"},
		{"missing name customapp", 3, "customapp", `{"text":"x"}`, "bad_request", "name"},
		{"missing name temporaryapp", 3, "temporaryapp", `{"lifetime":5}`, "bad_request", "name"},
		{"empty name", 3, "customapp", `{"name":""}`, "bad_request", "name"},
		{"null name", 3, "customapp", `{"name":null}`, "bad_request", "name"},
		{"number name", 3, "customapp", `{"name":7}`, "bad_request", "name"},
		{"custom body not an object", 3, "customapp", `["x"]`, "bad_request", "object"},
		{"basics timer", 3, "basics", `{"timer":"00:00:10"}`, "unsupported", "power"},
		{"basics get", 3, "basics", `{"get":"installedApps"}`, "unsupported", "power"},
		{"basics empty", 3, "basics", `{}`, "unsupported", "power"},
		{"basics app pause", 3, "basics", `{"app":"pause"}`, "unsupported", "pause"},
		{"basics power string", 3, "basics", `{"power":"on"}`, "bad_request", "power"},
		{"basics power null", 3, "basics", `{"power":null}`, "bad_request", "power"},
		{"basics two commands", 3, "basics", `{"power":true,"app":"next"}`, "bad_request", "one of"},
		{"basics switchTo empty", 3, "basics", `{"switchTo":""}`, "bad_request", "switchTo"},
		{"draw without list", 3, "draw", `{"repeat":1}`, "bad_request", "draw"},
		{"draw bad command", 3, "draw", `{"draw":[{"type":"pixel","position":[0],"color":[1,2,3]}]}`, "bad_request", "draw[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock(t, http.StatusOK, "OK")
			f := newForwarder(t, clock.srv.URL, tt.api)
			st, r, raw := handle(t, f, tt.mode, tt.body)
			if st != http.StatusBadRequest || r.Code != tt.code || r.OK {
				t.Fatalf("got %d %s, want 400 code %q", st, raw, tt.code)
			}
			if !strings.Contains(r.Error, tt.errSubstr) {
				t.Errorf("error %q does not mention %q", r.Error, tt.errSubstr)
			}
			if n := len(clock.requests()); n != 0 {
				t.Errorf("clock got %d requests, want none", n)
			}
		})
	}
}

func TestClockReplies(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"text", 200, "OK", `{"ok":true,"clock_status":200,"clock_reply":"OK"}`},
		{"json", 200, `{"bat": 90, "app":"Time"}`, `{"ok":true,"clock_status":200,"clock_reply":{"bat":90,"app":"Time"}}`},
		{"empty 204", 204, "", `{"ok":true,"clock_status":204,"clock_reply":""}`},
		{"500", 500, "ErrorParsingJson", `{"error":"clock answered 500","code":"clock_error","clock_status":500,"clock_reply":"ErrorParsingJson"}`},
		{"404 json", 404, `{"error":"not found"}`, `{"error":"clock answered 404","code":"clock_error","clock_status":404,"clock_reply":{"error":"not found"}}`},
		{"bad utf-8", 200, "\xff", `{"ok":true,"clock_status":200,"clock_reply":"\ufffd"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock(t, tt.status, tt.body)
			f := newForwarder(t, clock.srv.URL, 3)
			st, raw := f.HandleMessage(t.Context(), wire.Message{Mode: "notify", Body: []byte(`{"text":"hi"}`)})
			wantStatus := http.StatusOK
			if tt.status >= 300 {
				wantStatus = http.StatusBadGateway
			}
			if st != wantStatus || string(raw) != tt.want {
				t.Errorf("got %d %s\nwant %d %s", st, raw, wantStatus, tt.want)
			}
		})
	}
}

func TestClockReplyIsLimited(t *testing.T) {
	clock := newClock(t, http.StatusOK, strings.Repeat("x", maxClockReply+1000))
	f := newForwarder(t, clock.srv.URL, 3)
	st, r, _ := handle(t, f, "notify", `{"text":"hi"}`)
	if st != http.StatusOK || !r.Truncated {
		t.Fatalf("status %d truncated %v", st, r.Truncated)
	}
	var s string
	if err := json.Unmarshal(r.ClockReply, &s); err != nil || len(s) != maxClockReply {
		t.Errorf("clock_reply: %d bytes (err %v), want %d", len(s), err, maxClockReply)
	}
}

func TestClockDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more: connection refused

	for _, api := range []int{2, 3} {
		f := newForwarder(t, url, api)
		start := time.Now()
		st, raw := f.HandleMessage(t.Context(), wire.Message{Mode: "notify", Body: []byte(`{"text":"hi"}`)})
		if want := `{"error":"clock unreachable","code":"clock_unreachable"}`; st != http.StatusBadGateway || string(raw) != want {
			t.Errorf("api %d: got %d %s, want 502 %s", api, st, raw, want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("api %d: took %v to notice a refused connection", api, d)
		}
	}
}

// hangingClock accepts requests and never answers (or, with headersFirst,
// answers the headers and never the body) until the test ends.
func hangingClock(t *testing.T, headersFirst bool) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headersFirst {
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, `{"partial":`)
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)                 // runs second: waits for handlers
	t.Cleanup(func() { close(release) }) // runs first: lets them return
	return srv.URL
}

func TestClockHangsPastDeadline(t *testing.T) {
	const timeout = 200 * time.Millisecond
	const slack = time.Second // scheduling under -race; a hang would be 5 s or forever

	check := func(t *testing.T, f *Forwarder, ctx context.Context) {
		t.Helper()
		start := time.Now()
		st, raw := f.HandleMessage(ctx, wire.Message{Mode: "notify", Body: []byte(`{"text":"hi"}`)})
		d := time.Since(start)
		if want := `{"error":"clock unreachable","code":"clock_unreachable"}`; st != http.StatusBadGateway || string(raw) != want {
			t.Errorf("got %d %s, want 502 %s", st, raw, want)
		}
		if d > timeout+slack {
			t.Errorf("returned after %v, deadline was %v", d, timeout)
		}
	}

	t.Run("ctx deadline", func(t *testing.T) {
		f := newForwarder(t, hangingClock(t, false), 3)
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		check(t, f, ctx)
	})
	t.Run("client timeout", func(t *testing.T) {
		f, err := New(hangingClock(t, false), 2, &http.Client{Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		check(t, f, t.Context())
	})
	t.Run("body never ends", func(t *testing.T) {
		f := newForwarder(t, hangingClock(t, true), 3)
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		check(t, f, ctx)
	})
}

func TestBasePathAndBasicAuth(t *testing.T) {
	clock := newClock(t, http.StatusOK, "OK")
	base := strings.Replace(clock.srv.URL, "http://", "http://admin:s3cret@", 1) + "/clock/"
	f := newForwarder(t, base, 3)
	if st, r, _ := handle(t, f, "basics", `{"app":"next"}`); st != http.StatusOK {
		t.Fatalf("status %d %+v", st, r)
	}
	got := clock.only(t)
	if got.path != "/clock/api/nextapp" {
		t.Errorf("path %q, want /clock/api/nextapp", got.path)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:s3cret")); got.auth != want {
		t.Errorf("Authorization %q, want %q", got.auth, want)
	}
}

func TestNew(t *testing.T) {
	bad := []struct {
		url  string
		api  int
		want error
	}{
		{"", 3, ErrBadURL},
		{"192.168.1.20", 3, ErrBadURL},
		{"192.168.1.20:7000", 2, ErrBadURL},
		{"ftp://clock.local", 3, ErrBadURL},
		{"http://", 3, ErrBadURL},
		{"http:///api", 3, ErrBadURL},
		{"http://:80", 3, ErrBadURL},
		{"http://clock.local/?token=x", 3, ErrBadURL},
		{"http://clock.local/?", 3, ErrBadURL},
		{"http://clock.local/#frag", 3, ErrBadURL},
		{"http://clo ck.local", 3, ErrBadURL},
		{"http://clock.local", 1, ErrBadAPI},
		{"http://clock.local", 4, ErrBadAPI},
		{"http://clock.local", 0, ErrBadAPI},
	}
	for _, tt := range bad {
		f, err := New(tt.url, tt.api, nil)
		if !errors.Is(err, tt.want) || f != nil {
			t.Errorf("New(%q, %d) = %v, %v; want %v", tt.url, tt.api, f, err, tt.want)
		}
	}
	for _, u := range []string{"http://192.168.1.20:7000", "https://clock.local/", "http://[::1]:80/prefix", "HTTP://Clock.Local"} {
		f, err := New(u, 3, nil)
		if err != nil {
			t.Errorf("New(%q): %v", u, err)
			continue
		}
		if f.client == nil || f.client.Timeout != DefaultTimeout {
			t.Errorf("New(%q): default client %+v, want timeout %v", u, f.client, DefaultTimeout)
		}
	}
	c := &http.Client{}
	if f, err := New("http://clock.local", 2, c); err != nil || f.client != c {
		t.Errorf("New with a client: %v, client kept: %v", err, err == nil && f.client == c)
	}
}

// TestConcurrentMessages shares one Forwarder between goroutines; -race
// checks that it holds no mutable state.
func TestConcurrentMessages(t *testing.T) {
	clock := newClock(t, http.StatusOK, "OK")
	f := newForwarder(t, clock.srv.URL, 3)
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			mode, body := "notify", `{"text":"hi"}`
			if i%2 == 1 {
				mode, body = "draw", v2Bodies["draw"]
			}
			if st, raw := f.HandleMessage(t.Context(), wire.Message{Mode: mode, Body: []byte(body)}); st != http.StatusOK {
				t.Errorf("message %d: %d %s", i, st, raw)
			}
		})
	}
	wg.Wait()
	if got := len(clock.requests()); got != n {
		t.Errorf("clock got %d requests, want %d", got, n)
	}
}

// TestBodyNotRetained checks that the caller may reuse its body buffer as
// soon as HandleMessage returns.
func TestBodyNotRetained(t *testing.T) {
	clock := newClock(t, http.StatusOK, "OK")
	f := newForwarder(t, clock.srv.URL, 2)
	body := []byte(`{"text":"original"}`)
	if st, raw := f.HandleMessage(t.Context(), wire.Message{Mode: "notify", Body: body}); st != http.StatusOK {
		t.Fatalf("%d %s", st, raw)
	}
	copy(body, `{"text":"CLOBBERED"}`)
	if got := clock.only(t).body; got != `{"text":"original"}` {
		t.Errorf("clock got %s", got)
	}
}
