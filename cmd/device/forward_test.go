package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/internal/fakeclock"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/server"
)

// at is what the clock should get: one request.
type at struct {
	method, path, query, contentType, body string
}

// modeCase is one webhook and what follows from it, end to end.
type modeCase struct {
	mode, method, name, contentType, body string // the webhook
	clock                                 *at    // nil: the clock gets nothing
	status                                int    // the caller's
	reply                                 string // the caller's body; "" checks only the status, a code checks the error
}

const okOK = `{"ok":true,"clock_status":200,"clock_reply":"OK"}`

// runModes sends every case through a relay to the agent (the device
// command, forwarding with --forward-api auto) and on to clock, and checks
// what the clock got and what the caller got back.
func runModes(t *testing.T, clock *fakeclock.Clock, cases []modeCase) {
	// Many webhooks to one token: its rate limit off.
	f := startRelayAndAgentWith(t, func(c *server.Config) { c.Webhook.PerToken = limit.Rate{} }, "--forward", clock.URL, "--forward-api", "auto")
	tok := f.token(t)
	// The first message has the agent ask the clock which API it speaks.
	if status, body := f.relay.Post(t, "nextapp", tok, ``); status != 200 {
		t.Fatalf("first message: %d %s", status, body)
	}
	clock.Reset()
	for _, c := range cases {
		url := f.relay.URL(c.mode, "") // the token goes in the header
		if c.name != "" {
			url += "&name=" + c.name
		}
		hdr := http.Header{"Authorization": {"Bearer " + tok}}
		if c.contentType != "" {
			hdr.Set("Content-Type", c.contentType)
		}
		status, body := f.relay.Do(t, c.method, url, c.body, hdr)
		what := c.method + " mode=" + c.mode + " " + c.body
		if status != c.status {
			t.Errorf("%s: the caller got %d %s, want %d", what, status, body, c.status)
		}
		switch {
		case c.reply == "":
		case !strings.HasPrefix(c.reply, "{") && !strings.HasPrefix(c.reply, "["):
			var e struct{ Code string }
			if json.Unmarshal(body, &e); e.Code != c.reply {
				t.Errorf("%s: the caller got %s, want code %s", what, body, c.reply)
			}
		case !fakeclock.SameJSON(string(body), c.reply):
			t.Errorf("%s: the caller got %s\nwant %s", what, body, c.reply)
		}
		reqs := clock.Requests()
		clock.Reset()
		if c.clock == nil {
			if len(reqs) != 0 {
				t.Errorf("%s: the clock got %+v, want nothing", what, reqs)
			}
			continue
		}
		if len(reqs) == 0 {
			t.Errorf("%s: the clock got nothing", what)
			continue
		}
		got, want := reqs[len(reqs)-1], c.clock
		if got.Method != want.method || got.Path != want.path || got.RawQuery != want.query ||
			got.ContentType != want.contentType || !fakeclock.SameJSON(got.Body, want.body) {
			t.Errorf("%s: the clock got %s %s?%s [%s] %s\nwant %s %s?%s [%s] %s", what,
				got.Method, got.Path, got.RawQuery, got.ContentType, got.Body,
				want.method, want.path, want.query, want.contentType, want.body)
		}
	}
}

const (
	jsonCT = "application/json"
	textCT = "text/plain; charset=utf-8"
)

func post(path, body string) *at { return &at{"POST", path, "", jsonCT, body} }
func postEmpty(path string) *at  { return &at{"POST", path, "", "", ""} }
func get(path string) *at        { return &at{"GET", path, "", "", ""} }

// TestEveryModeOnAWTRIX3: every mode, from a webhook through the relay
// and the agent to an AWTRIX 3 clock: the call the firmware gets, and the
// caller's answer.
func TestEveryModeOnAWTRIX3(t *testing.T) {
	clock := fakeclock.AWTRIX3(t)
	runModes(t, clock, []modeCase{
		{"notify", "POST", "", jsonCT, `{"text":"Hi","rainbow":true,"duration":10}`, post("/api/notify", `{"text":"Hi","rainbow":true,"duration":10}`), 200, okOK},
		{"notify", "POST", "", jsonCT, `{"force":true,"icon":36,"text":"New mail","color":[255,255,255]}`, post("/api/notify", `{"stack":false,"icon":"36","text":"New mail","color":[255,255,255]}`), 200, okOK},
		{"notify", "POST", "", "text/plain", `Mail from "Bob"`, post("/api/notify", `{"text":"Mail from \"Bob\""}`), 200, okOK},
		{"notify", "POST", "", "application/x-www-form-urlencoded", `text=Door&duration=5`, post("/api/notify", `{"text":"Door","duration":5}`), 200, okOK},
		{"notify", "POST", "", jsonCT, `{"text":"Hi","fallingText":true}`, nil, 400, "unsupported"},
		{"dismiss", "POST", "", "", ``, postEmpty("/api/notify/dismiss"), 200, okOK},
		{"indicator1", "POST", "", jsonCT, `{"color":[255,0,0],"blink":500}`, post("/api/indicator1", `{"color":[255,0,0],"blink":500}`), 200, okOK},
		{"indicator2", "POST", "", "", ``, postEmpty("/api/indicator2"), 200, okOK},
		{"indicator3", "POST", "", jsonCT, `{"color":"#00FF00","fade":1000}`, post("/api/indicator3", `{"color":"#00FF00","fade":1000}`), 200, okOK},
		{"moodlight", "POST", "", jsonCT, `{"brightness":170,"kelvin":2300}`, post("/api/moodlight", `{"brightness":170,"kelvin":2300}`), 200, okOK},
		{"moodlight", "POST", "", "", ``, postEmpty("/api/moodlight"), 200, okOK},
		{"sound", "POST", "", jsonCT, `{"sound":"alarm"}`, post("/api/sound", `{"sound":"alarm"}`), 200, okOK},
		{"sound", "POST", "", jsonCT, `101`, post("/api/sound", `{"sound":"0101"}`), 200, okOK},
		{"rtttl", "POST", "", "text/plain", `tetris:d=4,o=5,b=160:e6,8b`, &at{"POST", "/api/rtttl", "", textCT, `tetris:d=4,o=5,b=160:e6,8b`}, 200, okOK},
		{"r2d2", "POST", "", jsonCT, `"Hello"`, &at{"POST", "/api/r2d2", "", textCT, `Hello`}, 200, okOK},
		{"sleep", "POST", "", jsonCT, `{"sleep":60}`, post("/api/sleep", `{"sleep":60}`), 200, okOK},
		{"reboot", "POST", "", "", ``, postEmpty("/api/reboot"), 200, okOK},
		{"power", "POST", "", jsonCT, `{"power":false}`, post("/api/power", `{"power":false}`), 200, okOK},
		{"power", "POST", "", jsonCT, `true`, post("/api/power", `{"power":true}`), 200, okOK},
		{"switch", "POST", "", jsonCT, `{"name":"Date","fast":true}`, post("/api/switch", `{"name":"Date","fast":true}`), 200, okOK},
		{"switch", "POST", "", jsonCT, `"Nope"`, post("/api/switch", `{"name":"Nope"}`), 502, "clock_error"},
		{"nextapp", "POST", "", "", ``, postEmpty("/api/nextapp"), 200, okOK},
		{"previousapp", "POST", "", "", ``, postEmpty("/api/previousapp"), 200, okOK},
		{"apps", "POST", "", jsonCT, `[{"name":"Date","show":false}]`, post("/api/apps", `[{"name":"Date","show":false}]`), 200, okOK},
		{"apps", "GET", "", "", ``, get("/api/apps"), 200, `[{"name":"Time"},{"name":"Date"},{"name":"Temperature"},{"name":"Humidity"},{"name":"Battery"}]`},
		{"reorder", "POST", "", jsonCT, `["Date","Time"]`, post("/api/reorder", `["Date","Time"]`), 200, okOK},
		{"custom", "POST", "weather", jsonCT, `[{"text":"1"},{"text":"2"}]`, &at{"POST", "/api/custom", "name=weather", jsonCT, `[{"text":"1"},{"text":"2"}]`}, 200, okOK},
		{"custom", "POST", "weather", "", ``, &at{"POST", "/api/custom", "name=weather", "", ``}, 200, okOK},
		{"custom", "POST", "", jsonCT, `{"text":"1"}`, nil, 400, "bad_request"},
		{"stats", "GET", "", "", ``, get("/api/stats"), 200, fakeclock.Stats},
		{"screen", "GET", "", "", ``, get("/api/screen"), 200, ""},
		{"loop", "GET", "", "", ``, get("/api/loop"), 200, `{"Time":0,"Date":1,"Temperature":2,"Humidity":3,"Battery":4}`},
		{"effects", "GET", "", "", ``, get("/api/effects"), 200, `["Fade","MovingLine","BrickBreaker","PingPong","Radar"]`},
		{"transitions", "POST", "", "", ``, get("/api/transitions"), 200, `["Random","Slide","Dim","Zoom","Rotate"]`},
		{"settings", "GET", "", "", ``, get("/api/settings"), 200, `{"ATIME":7,"BRI":120,"TEFF":1}`},
		{"settings", "POST", "", jsonCT, `{"Brightness":40}`, post("/api/settings", `{"BRI":40}`), 200, okOK},
		{"draw", "POST", "", jsonCT, `{"draw":[{"type":"fill","color":[1,2,3]},{"type":"wait","ms":2000},{"type":"exit"}]}`, post("/api/notify", `{"draw":[{"df":[0,0,32,8,"#010203"]}],"duration":2}`), 200, okOK},
		{"basics", "POST", "", jsonCT, `{"app":"next"}`, postEmpty("/api/nextapp"), 200, okOK},
		{"app", "POST", "", jsonCT, `{"name":"test","icon":6,"text":"Awtrix"}`, &at{"POST", "/api/custom", "name=test", jsonCT, `{"icon":"6","text":"Awtrix"}`}, 200, okOK},
		{"customapp", "POST", "", jsonCT, `{"ID":4,"text":"x"}`, &at{"POST", "/api/custom", "name=customapp4", jsonCT, `{"text":"x"}`}, 200, okOK},
		// The loop holds the 5 native apps and test, customapp4 by now; T joins it: 2 loops x 8 apps x 7 s.
		{"temporaryapp", "POST", "", jsonCT, `{"name":"T","lifetime":2,"text":"x"}`, &at{"POST", "/api/custom", "name=T", jsonCT, `{"lifetime":112,"text":"x"}`}, 200, okOK},
		{"erase", "POST", "", "", ``, nil, 403, "forbidden"},
		{"resetSettings", "POST", "", "", ``, nil, 403, "forbidden"},
		{"doupdate", "POST", "", "", ``, nil, 403, "forbidden"},
	})
}

// TestEveryModeOnAWTRIX2: every mode to an AWTRIX 2 host: its own modes
// pass as they are, AWTRIX 3's map to the basic controls that do the
// same, and the rest is refused before it reaches the host.
func TestEveryModeOnAWTRIX2(t *testing.T) {
	clock := fakeclock.AWTRIX2(t)
	const ok = `{"ok":true,"clock_status":200,"clock_reply":{"success":true}}`
	cases := []modeCase{
		{"settings", "GET", "", "", ``, post("/api/v3/basics", `{"get":"settings"}`), 200, `{"settings":"fake settings"}`},
		{"power", "POST", "", jsonCT, `true`, post("/api/v3/basics", `{"power":true}`), 200, ok},
		{"switch", "POST", "", jsonCT, `"Date"`, post("/api/v3/basics", `{"switchTo":"Date"}`), 200, ok},
		{"nextapp", "POST", "", "", ``, post("/api/v3/basics", `{"app":"next"}`), 200, ok},
		{"previousapp", "POST", "", "", ``, post("/api/v3/basics", `{"app":"back"}`), 200, ok},
		{"sound", "POST", "", jsonCT, `101`, post("/api/v3/basics", `{"soundfile":101}`), 200, ok},
		{"reorder", "POST", "", jsonCT, `["Time","Date"]`, post("/api/v3/basics", `{"appList":["Time","Date"]}`), 200, ok},
		{"apps", "GET", "", "", ``, post("/api/v3/basics", `{"get":"installedApps"}`), 200, `{"installedApps":"fake installedApps"}`},
		{"loop", "GET", "", "", ``, post("/api/v3/basics", `{"get":"appList"}`), 200, `{"appList":"fake appList"}`},
	}
	for mode, body := range map[string]string{
		"notify":       `{"force":true,"text":"Awesome","icon":1,"color":[0,255,255],"count":2}`,
		"draw":         `{"repeat":2,"draw":[{"type":"fill","color":[100,100,100]},{"type":"show"}]}`,
		"basics":       `{"timer":"00:00:10","color":[255,0,0],"count":10,"text":"AWTRIX"}`,
		"app":          `{"name":"test","force":false,"icon":6,"text":"Awtrix","color":[255,0,0]}`,
		"settings":     `{"Brightness":100}`,
		"customapp":    `{"ID":4,"text":"Google dropped"}`,
		"temporaryapp": `{"name":"TestApp","lifetime":5,"icon":6,"text":"Totally Awesome","color":[60,255,0]}`,
	} {
		cases = append(cases, modeCase{mode, "POST", "", jsonCT, body, post("/api/v3/"+mode, body), 200, ok})
	}
	for _, mode := range []string{"dismiss", "indicator1", "indicator2", "indicator3", "moodlight", "rtttl", "r2d2", "sleep", "reboot", "stats", "screen", "effects", "transitions", "erase"} {
		body := `{}`
		if mode == "stats" || mode == "screen" || mode == "effects" || mode == "transitions" {
			body = ``
		}
		cases = append(cases, modeCase{mode, "POST", "", jsonCT, body, nil, 400, "unsupported"})
	}
	cases = append(cases, modeCase{"custom", "POST", "x", jsonCT, `{"text":"1"}`, nil, 400, "unsupported"})
	runModes(t, clock, cases)
}

// TestSlowClockIsReportedBeforeTheRelayGivesUp: the agent learns how long
// the relay waits (protocol version 2) and reports a clock that hangs as
// 502 clock_timeout inside that time, even when its own --clock-timeout
// is longer: the caller never gets a misleading 504 from the relay.
func TestSlowClockIsReportedBeforeTheRelayGivesUp(t *testing.T) {
	release := make(chan struct{})
	clock := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer clock.Close()
	defer close(release)
	const ack = time.Second
	f := startRelayAndAgentWith(t, func(c *server.Config) { c.Webhook.AckTimeout = ack },
		"--forward", clock.URL, "--forward-api", "v3", "--clock-timeout", "10s")
	start := time.Now()
	status, body := f.post(t, f.token(t), `{"text":"hi"}`)
	if status != 502 || !strings.Contains(body, `"code":"clock_timeout"`) {
		t.Fatalf("a clock that hangs: %d %s; want 502 clock_timeout", status, body)
	}
	if d := time.Since(start); d >= ack {
		t.Fatalf("answered after %v, not before the relay's %v", d, ack)
	}
	if !strings.Contains(f.stderr.String(), "clock call failed") {
		t.Errorf("the agent did not log the failure:\n%s", f.stderr)
	}
}
