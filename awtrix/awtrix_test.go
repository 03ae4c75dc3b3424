package awtrix

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/internal/fakeclock"
	"github.com/pixelrelay/relay/wire"
)

// fixedClock answers every request with status and reply, and records
// them: for the shapes of the replies, whatever the call.
func fixedClock(t *testing.T, status int, reply string) (*httptest.Server, func() []fakeclock.Request) {
	t.Helper()
	var mu sync.Mutex
	var reqs []fakeclock.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, fakeclock.Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			ContentType: r.Header.Get("Content-Type"), Auth: r.Header.Get("Authorization"), Body: string(b)})
		mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []fakeclock.Request {
		mu.Lock()
		defer mu.Unlock()
		return append([]fakeclock.Request(nil), reqs...)
	}
}

func newForwarder(t *testing.T, url string, api int) *Forwarder {
	t.Helper()
	f, err := New(url, Options{API: api})
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
		t.Fatalf("reply %q is not JSON: %v", b, err)
	}
	return r
}

func handle(t *testing.T, f *Forwarder, mode, query, body string) (int, replyJSON, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	st, b := f.HandleMessage(ctx, wire.Message{Mode: mode, Query: query, Body: []byte(body)})
	return st, decodeReply(t, b), b
}

// only is the one request the clock got since the last Reset.
func only(t *testing.T, c *fakeclock.Clock) fakeclock.Request {
	t.Helper()
	r := c.Requests()
	if len(r) != 1 {
		t.Fatalf("the clock got %d requests, want 1: %+v", len(r), r)
	}
	c.Reset()
	return r[0]
}

// TestAWTRIX2Translation: every AWTRIX 2 key of a notification either
// carries over (renamed or converted) to what means the same in AWTRIX 3,
// or is refused by name. These rows are the table in docs/API.md.
func TestAWTRIX2Translation(t *testing.T) {
	clock := fakeclock.AWTRIX3(t)
	f := newForwarder(t, clock.URL, API3)
	for _, c := range []struct {
		name, in, out string // out: the clock's body, or the error code
	}{
		{"shared keys pass", `{"text":"Hi","color":[255,0,0],"duration":10,"repeat":2,"rainbow":true,"progress":50}`,
			`{"text":"Hi","color":[255,0,0],"duration":10,"repeat":2,"rainbow":true,"progress":50}`},
		{"AWTRIX 3 keys pass", `{"text":"Hi","hold":true,"stack":false,"effect":"Fade","scrollSpeed":150,"icon":"mail"}`,
			`{"text":"Hi","hold":true,"stack":false,"effect":"Fade","scrollSpeed":150,"icon":"mail"}`},
		{"unknown keys pass", `{"text":"Hi","futureKey":{"a":1}}`, `{"text":"Hi","futureKey":{"a":1}}`},
		{"force true: shown at once", `{"text":"Hi","force":true}`, `{"text":"Hi","stack":false}`},
		{"force false: AWTRIX 3's default", `{"text":"Hi","force":false}`, `{"text":"Hi"}`},
		{"icon number becomes a file name", `{"text":"Hi","icon":36}`, `{"text":"Hi","icon":"36"}`},
		{"moveIcon", `{"text":"Hi","moveIcon":true}`, `{"text":"Hi","pushIcon":1}`},
		{"moveIcon with repeatIcon", `{"text":"Hi","moveIcon":true,"repeatIcon":true}`, `{"text":"Hi","pushIcon":2}`},
		{"moveIcon false", `{"text":"Hi","moveIcon":false,"repeatIcon":true}`, `{"text":"Hi","pushIcon":0}`},
		{"soundfile is a 4-digit MP3", `{"text":"Hi","soundfile":7}`, `{"text":"Hi","sound":"0007"}`},
		{"progress colors", `{"progress":30,"progressColor":[0,255,0],"progressBackground":[9,9,9]}`, `{"progress":30,"progressC":[0,255,0],"progressBC":[9,9,9]}`},
		{"charts", `{"barchart":[1,2,3],"linechart":[4,5]}`, `{"bar":[1,2,3],"line":[4,5]}`},
		{"count is repeat", `{"text":"Awesome","icon":1,"color":[0,255,255],"count":2,"force":true}`, `{"text":"Awesome","icon":"1","color":[0,255,255],"repeat":2,"stack":false}`},
		{"multiColorText becomes fragments", `{"multiColorText":[{"text":"Totally ","color":[0,255,0]},{"text":"Awesome","color":[255,0,0]}]}`,
			`{"text":[{"t":"Totally ","c":"00FF00"},{"t":"Awesome","c":"FF0000"}]}`},
		{"scrollSpeed ms to percent", `{"text":"Hi","force":true,"scrollSpeed":130}`, `{"text":"Hi","stack":false,"scrollSpeed":50}`},
		{"scrollSpeed default", `{"text":"Hi","moveIcon":false,"scrollSpeed":65}`, `{"text":"Hi","pushIcon":0,"scrollSpeed":100}`},
		{"a notification's name shows nothing", `{"name":"Test","text":"Hi"}`, `{"text":"Hi"}`},
		{"fallingText", `{"fallingText":true,"text":"Hi"}`, "unsupported"},
		{"icon2", `{"text":"Hi","icon":1,"icon2":2}`, "unsupported"},
		{"yeelight", `{"text":"Hi","yeelight":["Alarm",10]}`, "unsupported"},
		{"remove from the queue", `{"remove":"Test"}`, "bad_request"},
		{"two names for one key", `{"progressColor":[1,2,3],"progressC":[4,5,6]}`, "bad_request"},
		{"text and multiColorText", `{"text":"a","multiColorText":[{"text":"b","color":[1,2,3]}]}`, "bad_request"},
		{"force not a bool", `{"text":"Hi","force":"yes"}`, "bad_request"},
		{"soundfile not a number", `{"text":"Hi","soundfile":"loud"}`, "bad_request"},
		{"AWTRIX 3 key of the wrong type", `{"text":"Hi","duration":"long"}`, "bad_request"},
		{"color out of range", `{"text":"Hi","color":[300,0,0]}`, "bad_request"},
		{"not an object", `["Hi"]`, "bad_request"},
		{"no body", ``, "bad_request"},
	} {
		st, r, raw := handle(t, f, "notify", "", c.in)
		if !strings.HasPrefix(c.out, "{") {
			if st != 400 || r.Code != c.out {
				t.Errorf("%s: %d %s, want 400 %s", c.name, st, raw, c.out)
			}
			if n := len(clock.Requests()); n != 0 {
				t.Errorf("%s: the clock got %d requests", c.name, n)
				clock.Reset()
			}
			continue
		}
		if st != 200 || !r.OK {
			t.Errorf("%s: %d %s", c.name, st, raw)
			clock.Reset()
			continue
		}
		if got := only(t, clock); got.Path != "/api/notify" || !fakeclock.SameJSON(got.Body, c.out) {
			t.Errorf("%s: the clock got %s %s\nwant /api/notify %s", c.name, got.Path, got.Body, c.out)
		}
	}
	// A refusal names the key.
	if _, r, _ := handle(t, f, "notify", "", `{"text":"Hi","fallingText":true}`); !strings.Contains(r.Error, "fallingText") {
		t.Errorf("the refusal does not name the key: %q", r.Error)
	}
}

// TestAppModes: AWTRIX 2's app, customapp and temporaryapp become AWTRIX
// 3's named custom apps; a temporary app's lifetime in app loops becomes
// seconds, from the clock's own loop and app time.
func TestAppModes(t *testing.T) {
	clock := fakeclock.AWTRIX3(t)
	f := newForwarder(t, clock.URL, API3)
	for _, c := range []struct {
		name, mode, in string
		query, out     string // the clock's query and body; out "" is an empty body
	}{
		{"app", "app", `{"name":"test","force":false,"icon":6,"text":"Awtrix","color":[255,0,0]}`, "name=test", `{"icon":"6","text":"Awtrix","color":[255,0,0]}`},
		{"customapp by ID", "customapp", `{"ID":4,"text":"Google dropped"}`, "name=customapp4", `{"text":"Google dropped"}`},
		{"customapp by name", "customapp", `{"name":"Weather","text":"21 C","icon":6}`, "name=Weather", `{"text":"21 C","icon":"6"}`},
		{"name with characters to escape", "customapp", `{"name":"a b&c=d/é","text":"x"}`, "name=a+b%26c%3Dd%2F%C3%A9", `{"text":"x"}`},
		// The loop holds the 5 native apps and test, customapp4, Weather and "a b&c=d/é" by now; TestApp joins it:
		// 5 loops x 10 apps x ATIME 7 s.
		{"temporary app: loops to seconds", "temporaryapp", `{"name":"TestApp","lifetime":5,"icon":6,"text":"Totally Awesome","color":[60,255,0]}`,
			"name=TestApp", `{"lifetime":350,"icon":"6","text":"Totally Awesome","color":[60,255,0]}`},
		{"remove", "temporaryapp", `{"remove":"TestApp"}`, "name=TestApp", ""},
	} {
		st, _, raw := handle(t, f, c.mode, "", c.in)
		if st != 200 {
			t.Fatalf("%s: %d %s", c.name, st, raw)
		}
		reqs := clock.Requests()
		clock.Reset()
		got := reqs[len(reqs)-1]
		if got.Method != "POST" || got.Path != "/api/custom" || got.RawQuery != c.query || !fakeclock.SameJSON(got.Body, c.out) {
			t.Errorf("%s: the clock got %s %s?%s %s\nwant POST /api/custom?%s %s", c.name, got.Method, got.Path, got.RawQuery, got.Body, c.query, c.out)
		}
		if c.mode == "temporaryapp" && c.out != "" && len(reqs) != 3 {
			t.Errorf("%s: %d requests; want the loop, the settings, then the app", c.name, len(reqs))
		}
	}
	for _, c := range []struct{ mode, in, code string }{
		{"app", `{"text":"x"}`, "bad_request"},
		{"customapp", `{"ID":4,"name":"x"}`, "bad_request"},
		{"customapp", `{"ID":-1}`, "bad_request"},
		{"temporaryapp", `{"name":"x","lifetime":0}`, "bad_request"},
		{"app", `{"name":"x","force":true}`, "unsupported"},
		{"app", `{"name":"x","soundfile":3}`, "unsupported"},
		{"app", `{"remove":"x","text":"y"}`, "bad_request"},
	} {
		if st, r, raw := handle(t, f, c.mode, "", c.in); st != 400 || r.Code != c.code {
			t.Errorf("%s %s: %d %s, want 400 %s", c.mode, c.in, st, raw, c.code)
		}
	}
}

// TestDrawTiming: a drawing lasts on AWTRIX 3 as long as it did on AWTRIX
// 2 (its waits, repeated, or until told otherwise), text lands where
// AWTRIX 2 drew it, and notification keys beside the drawing carry over.
func TestDrawTiming(t *testing.T) {
	clock := fakeclock.AWTRIX3(t)
	f := newForwarder(t, clock.URL, API3)
	fill := `{"type":"fill","color":[1,2,3]}`
	for _, c := range []struct{ name, in, out string }{
		{"no exit, no repeat: held", `{"draw":[` + fill + `,{"type":"show"}]}`, `{"hold":true,"draw":[{"df":[0,0,32,8,"#010203"]}]}`},
		{"exit after waits", `{"draw":[` + fill + `,{"type":"wait","ms":1500},{"type":"exit"},{"type":"wait","ms":9000}]}`, `{"duration":2,"draw":[{"df":[0,0,32,8,"#010203"]}]}`},
		{"repeat", `{"repeat":2,"draw":[` + fill + `,{"type":"wait","ms":3000},{"type":"exit"}]}`, `{"duration":6,"draw":[{"df":[0,0,32,8,"#010203"]}]}`},
		{"loop is repeat", `{"loop":3,"draw":[` + fill + `,{"type":"wait","ms":100}]}`, `{"duration":1,"draw":[{"df":[0,0,32,8,"#010203"]}]}`},
		{"the caller's duration wins", `{"duration":20,"text":"Hi","draw":[` + fill + `]}`, `{"duration":20,"text":"Hi","draw":[{"df":[0,0,32,8,"#010203"]}]}`},
		{"text one pixel right", `[{"type":"text","string":"Hi","position":[0,0],"color":[255,0,0]},{"type":"exit"}]`, `{"duration":1,"draw":[{"dt":[1,0,"Hi","#FF0000"]}]}`},
		{"AWTRIX 3 primitives pass", `{"draw":[{"dc":[28,4,3,"#FF0000"]}],"duration":5}`, `{"duration":5,"draw":[{"dc":[28,4,3,"#FF0000"]}]}`},
	} {
		if st, _, raw := handle(t, f, "draw", "", c.in); st != 200 {
			t.Errorf("%s: %d %s", c.name, st, raw)
			clock.Reset()
			continue
		}
		if got := only(t, clock); got.Path != "/api/notify" || !fakeclock.SameJSON(got.Body, c.out) {
			t.Errorf("%s: the clock got %s %s\nwant %s", c.name, got.Path, got.Body, c.out)
		}
	}
	for _, in := range []string{`{"repeat":0,"draw":[` + fill + `]}`, `{"draw":[{"type":"wait"}]}`, `{"draw":[]}`, `{"draw":[` + fill + `],"fallingText":true}`} {
		if st, _, raw := handle(t, f, "draw", "", in); st != 400 {
			t.Errorf("draw %s: %d %s, want 400", in, st, raw)
		}
	}
}

// TestBasicsAndSettings: AWTRIX 2's basic controls and settings map to
// AWTRIX 3's endpoints, one call each, or are refused by name.
func TestBasicsAndSettings(t *testing.T) {
	clock := fakeclock.AWTRIX3(t)
	f := newForwarder(t, clock.URL, API3)
	for _, c := range []struct {
		name, mode, in       string
		method, path, out    string // out: the clock's body
		wantStatus, wantCode int
	}{
		{"power", "basics", `{"power":true}`, "POST", "/api/power", `{"power":true}`, 200, 0},
		{"switchTo", "basics", `{"switchTo":"Date"}`, "POST", "/api/switch", `{"name":"Date"}`, 200, 0},
		{"switchTo fast", "basics", `{"switchTo":"Date","fast":true}`, "POST", "/api/switch", `{"name":"Date","fast":true}`, 200, 0},
		{"next", "basics", `{"app":"next"}`, "POST", "/api/nextapp", ``, 200, 0},
		{"back", "basics", `{"app":"back"}`, "POST", "/api/previousapp", ``, 200, 0},
		{"disable", "basics", `{"disable":"Date"}`, "POST", "/api/apps", `[{"name":"Date","show":false}]`, 200, 0},
		{"enable", "basics", `{"enable":"Date"}`, "POST", "/api/apps", `[{"name":"Date","show":true}]`, 200, 0},
		{"soundfile", "basics", `{"soundfile":101}`, "POST", "/api/sound", `{"sound":"0101"}`, 200, 0},
		{"appList", "basics", `{"appList":["Time","Date"]}`, "POST", "/api/reorder", `["Time","Date"]`, 200, 0},
		{"get settings", "basics", `{"get":"settings"}`, "GET", "/api/settings", ``, 200, 0},
		{"get version", "basics", `{"get":"version"}`, "GET", "/api/stats", ``, 200, 0},
		{"settings", "settings", `{"BRI":40,"ATIME":7}`, "POST", "/api/settings", `{"BRI":40,"ATIME":7}`, 200, 0},
		{"Brightness is BRI", "settings", `{"Brightness":100}`, "POST", "/api/settings", `{"BRI":100}`, 200, 0},
		{"settings read", "settings", ``, "GET", "/api/settings", ``, 200, 0},
	} {
		st, _, raw := handle(t, f, c.mode, "", c.in)
		if st != c.wantStatus {
			t.Errorf("%s: %d %s", c.name, st, raw)
			clock.Reset()
			continue
		}
		if got := only(t, clock); got.Method != c.method || got.Path != c.path || !fakeclock.SameJSON(got.Body, c.out) {
			t.Errorf("%s: the clock got %s %s %s\nwant %s %s %s", c.name, got.Method, got.Path, got.Body, c.method, c.path, c.out)
		}
	}
	for _, c := range []struct{ mode, in, code, names string }{
		{"basics", `{"timer":"00:00:10"}`, "unsupported", "timer"},
		{"basics", `{"app":"pause"}`, "unsupported", "pause"},
		{"basics", `{"get":"log"}`, "unsupported", "log"},
		{"basics", `{"power":true,"app":"next"}`, "bad_request", "one of"},
		{"basics", `{"power":"on"}`, "bad_request", "power"},
		{"basics", `{}`, "unsupported", "power"},
		{"settings", `{"AutoBrightness":true}`, "unsupported", "AutoBrightness"},
		{"settings", `{"Brightness":100,"BRI":50}`, "bad_request", "Brightness"},
	} {
		st, r, raw := handle(t, f, c.mode, "", c.in)
		if st != 400 || r.Code != c.code || !strings.Contains(r.Error, c.names) {
			t.Errorf("%s %s: %d %s, want 400 %s naming %s", c.mode, c.in, st, raw, c.code, c.names)
		}
	}
	if n := len(clock.Requests()); n != 0 {
		t.Errorf("refused messages reached the clock: %d requests", n)
	}
}

// TestReadsAnswerWithTheClocksJSON: a read's reply is the clock's own
// JSON, not wrapped.
func TestReadsAnswerWithTheClocksJSON(t *testing.T) {
	clock := fakeclock.AWTRIX3(t)
	f := newForwarder(t, clock.URL, API3)
	st, raw := f.HandleMessage(t.Context(), wire.Message{Mode: "stats"})
	if st != 200 || !fakeclock.SameJSON(string(raw), fakeclock.Stats) {
		t.Fatalf("stats: %d %s", st, raw)
	}
	st, raw = f.HandleMessage(t.Context(), wire.Message{Mode: "screen"})
	var px []int
	if json.Unmarshal(raw, &px); st != 200 || len(px) != 256 {
		t.Fatalf("screen: %d %s", st, raw)
	}
	if st, r, _ := handle(t, f, "stats", "", `{}`); st != 400 || r.Code != "bad_request" {
		t.Fatalf("a read with a body: %d %+v", st, r)
	}
}

// TestDetect: with APIAuto the agent asks the clock once, at the first
// message, and remembers.
func TestDetect(t *testing.T) {
	for name, c := range map[string]struct {
		clock *fakeclock.Clock
		api   int
	}{"AWTRIX 3": {fakeclock.AWTRIX3(t), API3}, "AWTRIX 2": {fakeclock.AWTRIX2(t), API2}} {
		f := newForwarder(t, c.clock.URL, APIAuto)
		for range 2 {
			if st, _, raw := handle(t, f, "notify", "", `{"text":"hi"}`); st != 200 {
				t.Fatalf("%s: %d %s", name, st, raw)
			}
		}
		reqs := c.clock.Requests()
		if len(reqs) != map[int]int{API3: 3, API2: 4}[c.api] || f.api.Load() != int32(c.api) {
			t.Errorf("%s: detected %d after %d requests %+v", name, f.api.Load(), len(reqs), reqs)
		}
	}
	other, _ := fixedClock(t, 404, "no")
	f := newForwarder(t, other.URL, APIAuto)
	if st, r, _ := handle(t, f, "notify", "", `{"text":"hi"}`); st != 502 || r.Code != "clock_unknown" {
		t.Errorf("a clock that is neither: %d %+v", st, r)
	}
	if f.api.Load() != APIAuto {
		t.Error("a failed detection was remembered")
	}
}

func TestDestructiveModes(t *testing.T) {
	clock := fakeclock.AWTRIX3(t)
	for _, mode := range []string{"erase", "resetSettings", "doupdate"} {
		f := newForwarder(t, clock.URL, API3)
		if st, r, _ := handle(t, f, mode, "", ""); st != 403 || r.Code != "forbidden" || !strings.Contains(r.Error, "--allow-destructive") {
			t.Errorf("%s without the flag: %d %+v", mode, st, r)
		}
		if n := len(clock.Requests()); n != 0 {
			t.Fatalf("%s reached the clock", mode)
		}
		f, _ = New(clock.URL, Options{API: API3, AllowDestructive: true})
		if st, _, raw := handle(t, f, mode, "", ""); st != 200 {
			t.Errorf("%s allowed: %d %s", mode, st, raw)
		}
		if got := only(t, clock); got.Method != "POST" || got.Path != "/api/"+mode {
			t.Errorf("%s: the clock got %+v", mode, got)
		}
	}
}

// TestTooLargeForTheClock: a body the firmware's parser cannot hold
// never leaves the agent.
func TestTooLargeForTheClock(t *testing.T) {
	clock := fakeclock.AWTRIX3(t)
	f := newForwarder(t, clock.URL, API3)
	big := `{"text":"` + strings.Repeat("x", maxNotify3) + `"}`
	if st, r, _ := handle(t, f, "notify", "", big); st != 413 || r.Code != "too_large_for_clock" || !strings.Contains(r.Error, "6144") {
		t.Errorf("a 6 KiB notification: %d %+v", st, r)
	}
	if st, _, raw := handle(t, f, "custom", "name=x", big); st != 200 {
		t.Errorf("the same as a custom app (8 KiB): %d %s", st, raw)
	}
	if n := len(clock.Requests()); n != 1 {
		t.Errorf("the clock got %d requests, want the custom app only", n)
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
			srv, _ := fixedClock(t, tt.status, tt.body)
			f := newForwarder(t, srv.URL, API3)
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
	srv, _ := fixedClock(t, http.StatusOK, strings.Repeat("x", maxClockReply+1000))
	f := newForwarder(t, srv.URL, API3)
	st, r, _ := handle(t, f, "notify", "", `{"text":"hi"}`)
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

	for _, api := range []int{API2, API3, APIAuto} {
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

// TestClockTimeout: a clock that hangs is clock_timeout, within the
// agent's timeout or the message's deadline, whichever is first: before
// the relay would give up.
func TestClockTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	const slack = time.Second // scheduling under -race; a hang would be 5 s or forever

	check := func(t *testing.T, f *Forwarder, ctx context.Context) {
		t.Helper()
		start := time.Now()
		st, raw := f.HandleMessage(ctx, wire.Message{Mode: "notify", Body: []byte(`{"text":"hi"}`)})
		d := time.Since(start)
		if want := `{"error":"the clock did not answer in time","code":"clock_timeout"}`; st != http.StatusBadGateway || string(raw) != want {
			t.Errorf("got %d %s, want 502 %s", st, raw, want)
		}
		if d > timeout+slack {
			t.Errorf("returned after %v, deadline was %v", d, timeout)
		}
	}
	t.Run("message deadline", func(t *testing.T) {
		f := newForwarder(t, hangingClock(t, false), API3)
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		check(t, f, ctx)
	})
	t.Run("agent timeout", func(t *testing.T) {
		f, err := New(hangingClock(t, false), Options{API: API2, Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		check(t, f, t.Context())
	})
	t.Run("body never ends", func(t *testing.T) {
		f := newForwarder(t, hangingClock(t, true), API3)
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		check(t, f, ctx)
	})
	t.Run("detection", func(t *testing.T) {
		f, _ := New(hangingClock(t, false), Options{Timeout: timeout})
		check(t, f, t.Context())
	})
}

// TestBasePathAndBasicAuth: a path prefix is kept and user:password@
// becomes Basic auth; the password never appears in a log line.
func TestBasePathAndBasicAuth(t *testing.T) {
	srv, reqs := fixedClock(t, http.StatusOK, "OK")
	base := strings.Replace(srv.URL, "http://", "http://admin:s3cret@", 1) + "/clock/"
	f := newForwarder(t, base, API3)
	if st, r, _ := handle(t, f, "basics", "", `{"app":"next"}`); st != http.StatusOK {
		t.Fatalf("status %d %+v", st, r)
	}
	got := reqs()[0]
	if got.Path != "/clock/api/nextapp" {
		t.Errorf("path %q, want /clock/api/nextapp", got.Path)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:s3cret")); got.Auth != want {
		t.Errorf("Authorization %q, want %q", got.Auth, want)
	}

	var logs bytes.Buffer
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	f, _ = New(strings.Replace(dead.URL, "http://", "http://admin:s3cret@", 1), Options{API: API3, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	handle(t, f, "notify", "", `{"text":"secret body"}`)
	if !strings.Contains(logs.String(), "clock call failed") || strings.Contains(logs.String(), "s3cret") || strings.Contains(logs.String(), "secret body") {
		t.Errorf("the log of a failure:\n%s", logs.String())
	}
}

func TestNew(t *testing.T) {
	bad := []struct {
		url  string
		opt  Options
		want error
	}{
		{"", Options{}, ErrBadURL},
		{"192.168.1.20", Options{}, ErrBadURL},
		{"192.168.1.20:7000", Options{}, ErrBadURL},
		{"ftp://clock.local", Options{}, ErrBadURL},
		{"http://", Options{}, ErrBadURL},
		{"http:///api", Options{}, ErrBadURL},
		{"http://:80", Options{}, ErrBadURL},
		{"http://clock.local/?token=x", Options{}, ErrBadURL},
		{"http://clock.local/?", Options{}, ErrBadURL},
		{"http://clock.local/#frag", Options{}, ErrBadURL},
		{"http://clo ck.local", Options{}, ErrBadURL},
		{"http://clock.local", Options{API: 1}, ErrBadAPI},
		{"http://clock.local", Options{API: 4}, ErrBadAPI},
	}
	for _, tt := range bad {
		f, err := New(tt.url, tt.opt)
		if !errors.Is(err, tt.want) || f != nil {
			t.Errorf("New(%q, %+v) = %v, %v; want %v", tt.url, tt.opt, f, err, tt.want)
		}
	}
	if _, err := New("http://clock.local", Options{Timeout: -time.Second}); err == nil {
		t.Error("a negative timeout passed")
	}
	for _, u := range []string{"http://192.168.1.20:7000", "https://clock.local/", "http://[::1]:80/prefix", "HTTP://Clock.Local"} {
		f, err := New(u, Options{})
		if err != nil {
			t.Errorf("New(%q): %v", u, err)
			continue
		}
		if f.opt.Timeout != DefaultTimeout || f.client == nil {
			t.Errorf("New(%q): timeout %v", u, f.opt.Timeout)
		}
	}
	c := &http.Client{}
	if f, err := New("http://clock.local", Options{Client: c}); err != nil || f.client != c {
		t.Errorf("New with a client: %v, client kept: %v", err, err == nil && f.client == c)
	}
}

// TestConcurrentMessages shares one Forwarder between goroutines; -race
// checks its state (the detected API) is safe.
func TestConcurrentMessages(t *testing.T) {
	clock := fakeclock.AWTRIX3(t)
	f := newForwarder(t, clock.URL, APIAuto)
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			mode, body := "notify", `{"text":"hi"}`
			if i%2 == 1 {
				mode, body = "draw", `{"draw":[{"type":"fill","color":[1,1,1]}]}`
			}
			if st, raw := f.HandleMessage(t.Context(), wire.Message{Mode: mode, Body: []byte(body)}); st != http.StatusOK {
				t.Errorf("message %d: %d %s", i, st, raw)
			}
		})
	}
	wg.Wait()
	var posts int
	for _, r := range clock.Requests() {
		if r.Method == "POST" {
			posts++
		}
	}
	if posts != n {
		t.Errorf("the clock got %d messages, want %d", posts, n)
	}
}

// TestBodyNotRetained checks that the caller may reuse its body buffer as
// soon as HandleMessage returns.
func TestBodyNotRetained(t *testing.T) {
	srv, reqs := fixedClock(t, http.StatusOK, "OK")
	f := newForwarder(t, srv.URL, API2)
	body := []byte(`{"text":"original"}`)
	if st, raw := f.HandleMessage(t.Context(), wire.Message{Mode: "notify", Body: body}); st != http.StatusOK {
		t.Fatalf("%d %s", st, raw)
	}
	copy(body, `{"text":"CLOBBERED"}`)
	if got := reqs()[0].Body; got != `{"text":"original"}` {
		t.Errorf("clock got %s", got)
	}
}
