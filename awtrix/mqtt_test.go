package awtrix

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/pixelrelay/relay/internal/fakeclock"
	"github.com/pixelrelay/relay/wire"
)

func TestDialectOf(t *testing.T) {
	for _, f := range filters3 {
		for _, p := range []string{"awtrix_ab12cd", "home/clock", "a", "/x"} {
			if d, prefix, ok := DialectOf(p + f); d != Dialect3 || prefix != p || !ok {
				t.Errorf("DialectOf(%q) = %v %q %v, want awtrix3 %q", p+f, d, prefix, ok, p)
			}
		}
	}
	for _, c := range []struct {
		filter, prefix string
		d              Dialect
	}{
		{"awtrixNG/cmd/#", "awtrixNG", DialectNG},
		{"a4cf12ab34cd/cmd/#", "a4cf12ab34cd", DialectNG},
		{"home/clocks/kitchen/cmd/#", "home/clocks/kitchen", DialectNG},
		{"x/notify/notify", "x/notify", Dialect3}, // a prefix may end in a topic's name
		{"x/cmd/notify", "x/cmd", Dialect3},
		{"x/notify/cmd/#", "x/notify", DialectNG},
	} {
		if d, prefix, ok := DialectOf(c.filter); d != c.d || prefix != c.prefix || !ok {
			t.Errorf("DialectOf(%q) = %v %q %v, want %v %q", c.filter, d, prefix, ok, c.d, c.prefix)
		}
	}
	for _, f := range []string{
		"", "notify", "/notify", "cmd/#", "/cmd/#", "+/notify", "#/notify", "a/+/notify", "a/#/cmd/#",
		"P/cmd", "P/cmd/+", "P/cmd/x", "P/notify/#", "P/custom/x", "P/custom", "P/stats", "P/screen",
		"P/state/#", "homeassistant/status", "P/Notify", "P/notify ", "a\x00b/notify", "a\xffb/cmd/#",
		"weather/temperature", // an AWTRIX 3 placeholder's own topic
	} {
		if d, prefix, ok := DialectOf(f); ok || d != DialectNone || prefix != "" {
			t.Errorf("DialectOf(%q) = %v %q %v, want not ok", f, d, prefix, ok)
		}
	}
	// The prefix is read off the end: were a filter the end of another, a
	// filter could name two prefixes.
	for _, a := range append(slices.Clone(filters3), filterNG) {
		for _, b := range append(slices.Clone(filters3), filterNG) {
			if a != b && strings.HasSuffix(a, b) {
				t.Errorf("%q ends in %q", a, b)
			}
		}
	}
}

func TestDialectString(t *testing.T) {
	for d, s := range map[Dialect]string{DialectNone: "none", Dialect3: "awtrix3", DialectNG: "awtrix-ng", 9: "Dialect(9)"} {
		if d.String() != s {
			t.Errorf("Dialect(%d).String() = %q, want %q", d, d.String(), s)
		}
	}
}

// TestTopics3AreSubscribed: every topic PlanMQTT publishes to on AWTRIX 3
// is one the clock subscribes to.
func TestTopics3AreSubscribed(t *testing.T) {
	subscribed := func(topic string) bool {
		return slices.Contains(filters3, "/"+topic) || strings.HasPrefix(topic, "custom/") && slices.Contains(filters3, "/custom/#")
	}
	topics := []string{"custom/weather"}
	for _, v := range topics3 {
		topics = append(topics, v.topic)
	}
	for _, v := range reads3 {
		if v.topic != "" {
			topics = append(topics, v.topic)
		}
	}
	for _, topic := range topics {
		if !subscribed(topic) {
			t.Errorf("AWTRIX 3 does not subscribe to %q", topic)
		}
	}
}

// planCase is one message and what PlanMQTT makes of it: want, or the
// refusal code (its status is 400, or 413 for too_large_for_clock) with
// names in the error.
type planCase struct {
	mode, query, body string
	want              Command
	code, names       string
}

// cmd is a Command for a test table.
func cmd(topic, payload string) Command {
	var p []byte
	if payload != "" {
		p = []byte(payload)
	}
	return Command{Topic: topic, Payload: p}
}

func (c Command) text() Command       { c.Text = true; return c }
func (c Command) disruptive() Command { c.Disruptive = true; return c }

func state(topic, state, field string) Command {
	return Command{Topic: topic, State: state, Field: field}
}

// mqttCases3 covers every mode on AWTRIX 3: what route3 plans, as a topic.
var mqttCases3 = []planCase{
	{mode: "draw", body: `{"draw":[{"type":"fill","color":[1,2,3]},{"type":"show"}]}`, want: cmd("notify", `{"draw":[{"df":[0,0,32,8,"#010203"]}],"hold":true}`)},
	{mode: "draw", body: `{"draw":[]}`, code: "bad_request"},
	{mode: "basics", body: `{"power":true}`, want: cmd("power", `{"power":true}`)},
	{mode: "basics", body: `{"switchTo":"Date","fast":true}`, want: cmd("switch", `{"fast":true,"name":"Date"}`)},
	{mode: "basics", body: `{"app":"next"}`, want: cmd("nextapp", "")},
	{mode: "basics", body: `{"app":"back"}`, want: cmd("previousapp", "")},
	{mode: "basics", body: `{"disable":"Date"}`, want: cmd("apps", `[{"name":"Date","show":false}]`).disruptive()},
	{mode: "basics", body: `{"soundfile":101}`, want: cmd("sound", `{"sound":"0101"}`)},
	{mode: "basics", body: `{"get":"version"}`, want: state("", "stats", "")},
	{mode: "basics", body: `{"get":"appList"}`, code: "unsupported", names: `"basics" has no MQTT topic on awtrix3 (over HTTP it is GET /api/loop)`},
	{mode: "basics", body: `{"appList":["Time","Date"]}`, code: "unsupported", names: "/api/reorder"},
	{mode: "basics", body: `{"timer":"00:00:10"}`, code: "unsupported", names: "timer"},
	{mode: "app", body: `{"name":"test","force":false,"icon":6,"text":"Awtrix"}`, want: cmd("custom/test", `{"icon":"6","text":"Awtrix"}`)},
	{mode: "app", body: `{"remove":"test"}`, want: cmd("custom/test", "")},
	{mode: "app", body: `{"name":"a/b é","text":"x"}`, want: cmd("custom/a/b é", `{"text":"x"}`)},
	{mode: "app", body: `{"name":"a+b","text":"x"}`, code: "bad_request", names: "+ or #"},
	{mode: "app", body: `{"name":"a#","text":"x"}`, code: "bad_request", names: "+ or #"},
	{mode: "app", body: `{"text":"x"}`, code: "bad_request", names: "name"},
	{mode: "settings", body: `{"BRI":40,"ATIME":7}`, want: cmd("settings", `{"ATIME":7,"BRI":40}`).disruptive()},
	{mode: "settings", body: `{"Brightness":100}`, want: cmd("settings", `{"BRI":100}`).disruptive()},
	{mode: "settings", body: `{"AutoBrightness":true}`, code: "unsupported", names: "AutoBrightness"},
	{mode: "settings", code: "unsupported", names: `mode "settings" has no MQTT topic on awtrix3`},
	{mode: "notify", body: `{"text":"hi","icon":6}`, want: cmd("notify", `{"icon":"6","text":"hi"}`)},
	{mode: "notify", body: `"hi"`, code: "bad_request"},
	{mode: "notify", body: `{"text":"` + strings.Repeat("x", maxNotify3) + `"}`, code: "too_large_for_clock", names: "6144"},
	{mode: "customapp", body: `{"ID":4,"text":"Google dropped"}`, want: cmd("custom/customapp4", `{"text":"Google dropped"}`)},
	// 2 loops x (5 apps + TestApp) x 7 s: AWTRIX 3's defaults, no Read.
	{mode: "temporaryapp", body: `{"name":"TestApp","lifetime":2,"text":"x"}`, want: cmd("custom/TestApp", `{"lifetime":84,"text":"x"}`)},
	{mode: "temporaryapp", body: `{"name":"x","lifetime":0}`, code: "bad_request", names: "lifetime"},
	{mode: "dismiss", want: cmd("notify/dismiss", "")},
	{mode: "dismiss", body: `{}`, want: cmd("notify/dismiss", "")},
	{mode: "dismiss", body: `{"a":1}`, code: "bad_request", names: "no body"},
	{mode: "indicator1", body: `{"color":[255,0,0],"blink":500}`, want: cmd("indicator1", `{"color":[255,0,0],"blink":500}`)},
	{mode: "indicator1", want: cmd("indicator1", "")},
	{mode: "indicator2", body: `{"color":"#00FF00","fade":1000}`, want: cmd("indicator2", `{"color":"#00FF00","fade":1000}`)},
	{mode: "indicator3", body: `{"color":"0"}`, want: cmd("indicator3", `{"color":"0"}`)},
	{mode: "indicator3", body: `{"color":"red"}`, code: "bad_request", names: "color"},
	{mode: "moodlight", body: `{"brightness":170,"kelvin":2300}`, want: cmd("moodlight", `{"brightness":170,"kelvin":2300}`)},
	{mode: "moodlight", want: cmd("moodlight", "")},
	{mode: "sound", body: `"alarm"`, want: cmd("sound", `{"sound":"alarm"}`)},
	{mode: "sound", body: `101`, want: cmd("sound", `{"sound":"0101"}`)},
	{mode: "sound", body: `{"sound":"alarm"}`, want: cmd("sound", `{"sound":"alarm"}`)},
	{mode: "sound", body: `[]`, code: "bad_request"},
	{mode: "rtttl", body: `"tetris:d=4,o=5,b=160:e6"`, want: cmd("rtttl", `tetris:d=4,o=5,b=160:e6`).text()},
	{mode: "rtttl", body: `{"rtttl":"x:d=4"}`, want: cmd("rtttl", `x:d=4`).text()},
	{mode: "r2d2", body: `"hello"`, want: cmd("r2d2", `hello`).text()},
	{mode: "r2d2", body: `""`, code: "bad_request"},
	{mode: "sleep", body: `60`, want: cmd("sleep", `{"sleep":60}`).disruptive()},
	{mode: "sleep", body: `{"sleep":60}`, want: cmd("sleep", `{"sleep":60}`).disruptive()},
	{mode: "sleep", body: `-1`, code: "bad_request"},
	{mode: "reboot", want: cmd("reboot", "").disruptive()},
	{mode: "power", body: `true`, want: cmd("power", `{"power":true}`)},
	{mode: "power", body: `{"power":false}`, want: cmd("power", `{"power":false}`)},
	{mode: "power", body: `"on"`, code: "bad_request"},
	{mode: "switch", body: `"Time"`, want: cmd("switch", `{"name":"Time"}`)},
	{mode: "switch", body: `{"name":"Time","fast":true}`, want: cmd("switch", `{"name":"Time","fast":true}`)},
	{mode: "switch", body: `5`, code: "bad_request"},
	{mode: "nextapp", want: cmd("nextapp", "")},
	{mode: "previousapp", want: cmd("previousapp", "")},
	{mode: "apps", body: `[{"name":"Date","show":false,"pos":1}]`, want: cmd("apps", `[{"name":"Date","show":false,"pos":1}]`).disruptive()},
	{mode: "apps", code: "unsupported", names: `mode "apps" has no MQTT topic on awtrix3`},
	{mode: "reorder", body: `["Time","Date"]`, code: "unsupported", names: `mode "reorder" has no MQTT topic on awtrix3`},
	{mode: "reorder", body: `{}`, code: "bad_request"}, // the body first, as over HTTP
	{mode: "custom", query: "name=weather", body: `{"text":"21 C","icon":6}`, want: cmd("custom/weather", `{"icon":"6","text":"21 C"}`)},
	{mode: "custom", query: "name=weather", body: `[{"text":"1"},{"text":"2"}]`, want: cmd("custom/weather", `[{"text":"1"},{"text":"2"}]`)},
	{mode: "custom", query: "name=weather", want: cmd("custom/weather", "")},
	{mode: "custom", query: "name=we.at-her_1", body: `{}`, want: cmd("custom/we.at-her_1", "")},
	{mode: "custom", body: `{"text":"x"}`, code: "bad_request", names: "name"},
	{mode: "stats", want: state("", "stats", "")},
	{mode: "stats", body: `{}`, code: "bad_request", names: "read"},
	{mode: "screen", want: state("sendscreen", "screen", "")},
	{mode: "loop", code: "unsupported", names: `mode "loop" has no MQTT topic on awtrix3`},
	{mode: "effects", want: state("", "stats/effects", "")},
	{mode: "transitions", want: state("", "stats/transitions", "")},
	{mode: "erase", code: "unsupported", names: `mode "erase" has no MQTT topic on awtrix3`},
	{mode: "resetSettings", code: "unsupported", names: `mode "resetSettings" has no MQTT topic on awtrix3`},
	{mode: "doupdate", want: cmd("doupdate", "").disruptive()},
	{mode: "nope", code: "bad_request", names: "unknown mode"},
}

// mqttCasesNG covers every mode on AWTRIX NG: NG's bodies pass as they
// are, AWTRIX 3's keys are not translated.
var mqttCasesNG = []planCase{
	{mode: "notify", body: `{ "text" : "Doorbell", "textColor":"#FF0000","durationMs":10000 }`, want: cmd("cmd/notify", `{ "text" : "Doorbell", "textColor":"#FF0000","durationMs":10000 }`)},
	{mode: "notify", body: `{"text":"hi","icon":6,"color":[255,0,0],"force":true}`, want: cmd("cmd/notify", `{"text":"hi","icon":6,"color":[255,0,0],"force":true}`)},
	{mode: "notify", body: `"hi"`, code: "bad_request"},
	{mode: "notify", code: "bad_request"},
	{mode: "dismiss", want: cmd("cmd/notify/dismiss", "")},
	{mode: "dismiss", body: `{}`, want: cmd("cmd/notify/dismiss", "")},
	{mode: "dismiss", body: `{"name":"x"}`, code: "bad_request", names: "no body"},
	{mode: "custom", query: "name=weather", body: `{"text":"21C","icon":"2422"}`, want: cmd("cmd/apps/pushed/weather", `{"text":"21C","icon":"2422"}`)},
	{mode: "custom", query: "name=Stock_1-a", body: `[{"text":"AAPL 189"},{"text":"MSFT 412"}]`, want: cmd("cmd/apps/pushed/Stock_1-a", `[{"text":"AAPL 189"},{"text":"MSFT 412"}]`)},
	{mode: "custom", query: "name=weather", want: cmd("cmd/apps/pushed/weather", "")},
	{mode: "custom", query: "name=weather", body: `{}`, want: cmd("cmd/apps/pushed/weather", `{}`)},
	{mode: "custom", query: "name=weather", body: `[]`, code: "bad_request"},
	{mode: "custom", query: "name=weather", body: `"x"`, code: "bad_request"},
	{mode: "custom", query: "name=we.ather", body: `{}`, code: "bad_request", names: "[A-Za-z0-9_-]"}, // the webhook allows '.', NG does not
	{mode: "custom", query: "name=" + strings.Repeat("a", 33), body: `{}`, code: "bad_request", names: "32"},
	{mode: "custom", query: "name=" + strings.Repeat("a", 32), body: `{}`, want: cmd("cmd/apps/pushed/"+strings.Repeat("a", 32), `{}`)},
	{mode: "custom", body: `{}`, code: "bad_request", names: "name="},
	{mode: "switch", body: `"Time"`, want: cmd("cmd/apps/switch", `{"name":"Time"}`)},
	{mode: "switch", body: `"{x"`, want: cmd("cmd/apps/switch", `{"name":"{x"}`)},
	{mode: "switch", body: `{"name":"Time","fast":true}`, want: cmd("cmd/apps/switch", `{"name":"Time","fast":true}`)},
	{mode: "switch", body: `5`, code: "bad_request"},
	{mode: "nextapp", want: cmd("cmd/apps/next", "")},
	{mode: "previousapp", want: cmd("cmd/apps/previous", "")},
	{mode: "previousapp", body: `1`, code: "bad_request"},
	{mode: "reorder", body: `{"order":["Time","weather","Date"],"disabled":["Battery"]}`, want: cmd("cmd/apps/order", `{"order":["Time","weather","Date"],"disabled":["Battery"]}`).disruptive()},
	{mode: "reorder", body: `["Time","Date"]`, code: "bad_request"},
	{mode: "settings", body: `{"brightness":120,"autoBrightness":false}`, want: cmd("cmd/settings", `{"brightness":120,"autoBrightness":false}`).disruptive()},
	{mode: "settings", body: `{"BRI":40}`, want: cmd("cmd/settings", `{"BRI":40}`).disruptive()}, // not translated: NG answers on /result
	{mode: "settings", want: state("", "state/settings", "")},
	{mode: "settings", body: `[1]`, code: "bad_request"},
	{mode: "resetSettings", want: cmd("cmd/settings/reset", "").disruptive()},
	{mode: "power", body: `{"power":false}`, want: cmd("cmd/display", `{"power":false}`)},
	{mode: "power", body: `{"power":true,"overlay":"rain"}`, want: cmd("cmd/display", `{"power":true,"overlay":"rain"}`)},
	{mode: "power", body: `true`, want: cmd("cmd/display", `{"power":true}`)},
	{mode: "power", body: `"on"`, code: "bad_request"},
	{mode: "moodlight", body: `{"color":"#3366FF","brightness":120}`, want: cmd("cmd/display/moodlight", `{"color":"#3366FF","brightness":120}`)},
	{mode: "moodlight", want: cmd("cmd/display/moodlight", "")},
	{mode: "indicator1", body: `{"color":"#FF0000","blinkMs":500}`, want: cmd("cmd/indicators/1", `{"color":"#FF0000","blinkMs":500}`)},
	{mode: "indicator2", body: `{"color":["HSV",120,255,255]}`, want: cmd("cmd/indicators/2", `{"color":["HSV",120,255,255]}`)},
	{mode: "indicator3", want: cmd("cmd/indicators/3", "")},
	{mode: "indicator3", body: `[1]`, code: "bad_request"},
	{mode: "sound", body: `{"mp3":"beep"}`, want: cmd("cmd/audio/play", `{"mp3":"beep"}`)},
	{mode: "sound", body: `"alarm"`, want: cmd("cmd/audio/play", `{"sound":"alarm"}`)},
	{mode: "sound", body: `101`, code: "bad_request", names: "track"},
	{mode: "rtttl", body: `"two:d=4,o=5,b=200:c,e"`, want: cmd("cmd/audio/play", `{"rtttl":"two:d=4,o=5,b=200:c,e"}`)},
	{mode: "rtttl", body: `{"rtttl":"x:d=4"}`, want: cmd("cmd/audio/play", `{"rtttl":"x:d=4"}`)},
	{mode: "rtttl", body: `{"rtttl":"a\"b"}`, want: cmd("cmd/audio/play", `{"rtttl":"a\"b"}`)},
	{mode: "rtttl", code: "bad_request"},
	{mode: "sleep", body: `{"durationMs":60000}`, want: cmd("cmd/device/sleep", `{"durationMs":60000}`).disruptive()},
	{mode: "sleep", body: `60`, code: "bad_request"},
	{mode: "reboot", want: cmd("cmd/device/reboot", "").disruptive()},
	{mode: "stats", want: state("", "state/device", "")},
	{mode: "stats", body: `{}`, code: "bad_request", names: "read"},
	{mode: "screen", want: state("cmd/screen/get", "state/screen", "")},
	{mode: "effects", want: state("", "state/capabilities", "effects")},
	{mode: "transitions", want: state("", "state/capabilities", "transitions")},
	{mode: "draw", body: `{"draw":[{"type":"show"}]}`, code: "unsupported", names: `mode "draw" has no MQTT topic on awtrix-ng`},
	{mode: "basics", body: `{"power":true}`, code: "unsupported", names: `mode "basics" has no MQTT topic on awtrix-ng`},
	{mode: "app", body: `{"name":"x"}`, code: "unsupported", names: `mode "app" has no MQTT topic on awtrix-ng`},
	{mode: "customapp", body: `{"ID":1}`, code: "unsupported", names: `mode "customapp" has no MQTT topic on awtrix-ng`},
	{mode: "temporaryapp", body: `{"name":"x"}`, code: "unsupported", names: `mode "temporaryapp" has no MQTT topic on awtrix-ng`},
	{mode: "loop", code: "unsupported", names: `mode "loop" has no MQTT topic on awtrix-ng`},
	{mode: "apps", code: "unsupported", names: `mode "apps" has no MQTT topic on awtrix-ng`},
	{mode: "apps", body: `[{"name":"Date","show":false}]`, code: "unsupported", names: `mode "apps" has no MQTT topic on awtrix-ng`},
	{mode: "r2d2", body: `"hi"`, code: "unsupported", names: `mode "r2d2" has no MQTT topic on awtrix-ng`},
	{mode: "erase", code: "unsupported", names: `mode "erase" has no MQTT topic on awtrix-ng`},
	{mode: "doupdate", code: "unsupported", names: `mode "doupdate" has no MQTT topic on awtrix-ng`},
	{mode: "nope", code: "bad_request", names: "unknown mode"},
}

// TestPlanMQTT runs both tables, and checks that they name every mode.
func TestPlanMQTT(t *testing.T) {
	for d, cases := range map[Dialect][]planCase{Dialect3: mqttCases3, DialectNG: mqttCasesNG} {
		for _, mode := range wire.Modes {
			if !slices.ContainsFunc(cases, func(c planCase) bool { return c.mode == mode }) {
				t.Errorf("%v: no case for mode %q", d, mode)
			}
		}
		for _, c := range cases {
			body := []byte(c.body)
			got, err := PlanMQTT(d, "awtrix_ab12cd", wire.Message{Mode: c.mode, Query: c.query, Body: body}, MQTTOptions{})
			name := d.String() + " " + c.mode + " " + c.query + " " + truncate(c.body, 60)
			if c.code != "" {
				checkRefusal(t, name, err, c.code, c.names)
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			for i := range body {
				body[i] = 'X' // the Command owns its payload
			}
			if !sameCommand(got, c.want) {
				t.Errorf("%s:\n got %s\nwant %s", name, showCommand(got), showCommand(c.want))
			}
		}
	}
}

// checkRefusal fails unless err is the refusal code, its message holding
// names, as the agent answers it.
func checkRefusal(t *testing.T, name string, err error, code, names string) {
	t.Helper()
	status := 400
	if code == "too_large_for_clock" {
		status = 413
	}
	st, b := ErrorReply(err)
	var r replyJSON
	if json.Unmarshal(b, &r) != nil || st != status || r.Code != code || !strings.Contains(r.Error, names) {
		t.Errorf("%s: %d %s, want %d %s naming %q", name, st, b, status, code, names)
	}
}

func sameCommand(a, b Command) bool {
	return a.Topic == b.Topic && bytes.Equal(a.Payload, b.Payload) && a.Text == b.Text &&
		a.State == b.State && a.Field == b.Field && a.Disruptive == b.Disruptive
}

func showCommand(c Command) string {
	b, _ := json.Marshal(struct {
		Command
		Payload string
	}{c, string(c.Payload)})
	return string(b)
}

// TestPlanMQTTIsRoute3: on AWTRIX 3 a message's PUBLISH carries what the
// HTTP forwarder posts for it, to the topic of the same name: one planner,
// two transports.
func TestPlanMQTTIsRoute3(t *testing.T) {
	clock := fakeclock.AWTRIX3(t)
	f, err := New(clock.URL, Options{API: API3, AllowDestructive: true})
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, c := range mqttCases3 {
		if c.code != "" || c.want.Topic == "" || c.want.State != "" || c.mode == "temporaryapp" || c.mode == "doupdate" || c.mode == "reboot" {
			continue // refusals, reads, a lifetime from the clock's own loop, and what the fake clock does not do
		}
		name := c.mode + " " + c.body
		got, err := PlanMQTT(Dialect3, "p", wire.Message{Mode: c.mode, Query: c.query, Body: []byte(c.body)}, MQTTOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		clock.Reset()
		if st, _, raw := handle(t, f, c.mode, c.query, c.body); st != 200 {
			t.Fatalf("%s over HTTP: %d %s", name, st, raw)
		}
		req := only(t, clock)
		path := strings.TrimPrefix(req.Path, "/")
		if q, _ := url.ParseQuery(req.RawQuery); path == "api/custom" {
			path += "/" + q.Get("name")
		}
		if path != "api/"+got.Topic || req.Method != "POST" || req.Body != string(got.Payload) ||
			got.Text != (req.ContentType == "text/plain; charset=utf-8") {
			t.Errorf("%s: HTTP %s %s?%s %s (%s)\nMQTT %s", name, req.Method, req.Path, req.RawQuery, req.Body, req.ContentType, showCommand(got))
		}
		compared++
	}
	if compared < 40 {
		t.Errorf("only %d messages compared", compared)
	}
}

// TestLifetimeOverMQTT: a temporary app's lifetime in loops becomes
// seconds from what Read answers, or from AWTRIX 3's defaults.
func TestLifetimeOverMQTT(t *testing.T) {
	m := wire.Message{Mode: "temporaryapp", Body: []byte(`{"name":"T","lifetime":2,"text":"x"}`)}
	var asked []string
	for _, c := range []struct {
		name string
		read func(string) ([]byte, bool)
		want string
	}{
		{"no Read: 2 loops x 6 apps x 7 s", nil, `{"lifetime":84,"text":"x"}`},
		{"Read knows nothing", func(p string) ([]byte, bool) { asked = append(asked, p); return nil, false }, `{"lifetime":84,"text":"x"}`},
		{"Read answers: 2 loops x (3 apps + T) x 10 s", func(p string) ([]byte, bool) {
			asked = append(asked, p)
			return []byte(map[string]string{"api/loop": `{"Time":0,"Date":1,"x":2}`, "api/settings": `{"ATIME":10}`}[p]), true
		}, `{"lifetime":80,"text":"x"}`},
	} {
		asked = nil
		got, err := PlanMQTT(Dialect3, "p", m, MQTTOptions{Read: c.read})
		if err != nil || got.Topic != "custom/T" || string(got.Payload) != c.want {
			t.Errorf("%s: %s %v, want %s", c.name, showCommand(got), err, c.want)
		}
		if c.read != nil && !slices.Equal(asked, []string{"api/loop", "api/settings"}) {
			t.Errorf("%s: Read was asked %q", c.name, asked)
		}
	}
}

// TestPublishSize: publishSize is the length of the PUBLISH paho encodes.
func TestPublishSize(t *testing.T) {
	for _, n := range []int{0, 1, 100, 123, 124, 125, 126, 127, 128, 8000, 16378, 16379, 16380, 16381, 70000} {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName = "ab/c"
		p.Payload = make([]byte, n)
		var b bytes.Buffer
		if err := p.Write(&b); err != nil {
			t.Fatal(err)
		}
		if got := publishSize(len(p.TopicName), n); got != b.Len() {
			t.Errorf("payload %d: publishSize %d, paho %d", n, got, b.Len())
		}
	}
}

// TestTooLargeForPubSubClient: a PUBLISH of MaxClockPacket bytes goes, one
// byte more is refused, whatever makes it long (prefix, topic, payload).
func TestTooLargeForPubSubClient(t *testing.T) {
	// A QoS 0 PUBLISH of 8192 bytes: 1 type byte, 2 of remaining length,
	// 2 of topic length, the topic, the payload.
	const prefix = "awtrix_ab12cd"
	notifyNG := func(total int) wire.Message {
		text := total - 5 - len(prefix+"/cmd/notify") - len(`{"text":""}`)
		return wire.Message{Mode: "notify", Body: []byte(`{"text":"` + strings.Repeat("x", text) + `"}`)}
	}
	if c, err := PlanMQTT(DialectNG, prefix, notifyNG(MaxClockPacket), MQTTOptions{}); err != nil {
		t.Errorf("a notification in a %d-byte PUBLISH: %v", MaxClockPacket, err)
	} else if n := publishSize(len(prefix)+1+len(c.Topic), len(c.Payload)); n != MaxClockPacket {
		t.Fatalf("the test's PUBLISH is %d bytes", n)
	}
	_, err := PlanMQTT(DialectNG, prefix, notifyNG(MaxClockPacket+1), MQTTOptions{})
	checkRefusal(t, "NG notify one byte over", err, "too_large_for_clock", "8193 bytes; awtrix-ng takes at most 8192")
	_, err = PlanMQTT(DialectNG, prefix+"x", notifyNG(MaxClockPacket), MQTTOptions{})
	checkRefusal(t, "NG notify, a longer prefix", err, "too_large_for_clock", "8193 bytes")

	// AWTRIX 3 parses a custom app of up to 8 KiB: that is too large for a
	// PUBLISH, which the topic makes longer.
	app := `{"text":"` + strings.Repeat("x", maxCustom3-len(`{"text":""}`)) + `"}`
	_, err = PlanMQTT(Dialect3, prefix, wire.Message{Mode: "custom", Query: "name=a", Body: []byte(app)}, MQTTOptions{})
	checkRefusal(t, "AWTRIX 3 custom of 8 KiB", err, "too_large_for_clock", "awtrix3 takes at most 8192")
	small := app[:len(app)-len(prefix+"/custom/a")-7] + `"}`
	if _, err := PlanMQTT(Dialect3, prefix, wire.Message{Mode: "custom", Query: "name=a", Body: []byte(small)}, MQTTOptions{}); err != nil {
		t.Errorf("AWTRIX 3 custom in 8192 bytes: %v", err)
	}
	// A read publishes nothing, whatever the prefix.
	if _, err := PlanMQTT(Dialect3, strings.Repeat("p", 9000), wire.Message{Mode: "stats"}, MQTTOptions{}); err != nil {
		t.Errorf("a read under a long prefix: %v", err)
	}
}

// TestPlanMQTTCallersErrors: a dialect not known or a prefix DialectOf
// would not give are the relay's mistakes, answered as internal errors.
func TestPlanMQTTCallersErrors(t *testing.T) {
	m := wire.Message{Mode: "notify", Body: []byte(`{"text":"hi"}`)}
	for _, c := range []struct {
		d      Dialect
		prefix string
		err    error
	}{
		{DialectNone, "p", errNoDialect},
		{7, "p", errNoDialect},
		{Dialect3, "", errBadPrefix},
		{DialectNG, "a/+", errBadPrefix},
		{DialectNG, "a/#", errBadPrefix},
		{Dialect3, "a\x00", errBadPrefix},
	} {
		_, err := PlanMQTT(c.d, c.prefix, m, MQTTOptions{})
		if !errors.Is(err, c.err) {
			t.Errorf("%v %q: %v, want %v", c.d, c.prefix, err, c.err)
		}
		if st, b := ErrorReply(err); st != 502 || string(b) != `{"error":"internal error","code":"internal"}` {
			t.Errorf("%v %q: ErrorReply %d %s", c.d, c.prefix, st, b)
		}
	}
}

func TestErrorReply(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		body   string
	}{
		{nil, 502, `{"error":"internal error","code":"internal"}`},
		{errors.New("some relay error"), 502, `{"error":"internal error","code":"internal"}`},
		{badRequest("custom: x"), 400, `{"error":"custom: x","code":"bad_request"}`},
		{unsupported(`mode "loop" has no MQTT topic on awtrix3`), 400, `{"error":"mode \"loop\" has no MQTT topic on awtrix3","code":"unsupported"}`},
		{tooLarge("notify: big"), 413, `{"error":"notify: big","code":"too_large_for_clock"}`},
		{errForbidden, 403, ""},
	} {
		st, b := ErrorReply(c.err)
		if st != c.status || c.body != "" && string(b) != c.body || !json.Valid(b) {
			t.Errorf("ErrorReply(%v) = %d %s, want %d %s", c.err, st, b, c.status, c.body)
		}
	}
}

func FuzzDialectOf(f *testing.F) {
	for _, s := range []string{"awtrix_ab12cd/notify", "a/b/custom/#", "awtrixNG/cmd/#", "/cmd/#", "+/notify", "x/cmd/notify", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		d, prefix, ok := DialectOf(filter)
		if !ok {
			if d != DialectNone || prefix != "" {
				t.Fatalf("not ok, but %v %q", d, prefix)
			}
			return
		}
		if !validPrefix(prefix) || !strings.HasPrefix(filter, prefix) {
			t.Fatalf("%q: prefix %q", filter, prefix)
		}
		rest := filter[len(prefix):]
		if d == DialectNG && rest != filterNG || d == Dialect3 && !slices.Contains(filters3, rest) || d != Dialect3 && d != DialectNG {
			t.Fatalf("%q: %v below %q is %q", filter, d, prefix, rest)
		}
	})
}

// FuzzPlanMQTT: no message makes PlanMQTT panic; every refusal is the
// agent's JSON error; every Command is one the clock can take.
func FuzzPlanMQTT(f *testing.F) {
	for _, c := range append(slices.Clone(mqttCases3), mqttCasesNG...) {
		i := slices.Index(wire.Modes, c.mode)
		f.Add(uint8(i), false, c.query, []byte(c.body))
		f.Add(uint8(i), true, c.query, []byte(c.body))
	}
	f.Fuzz(func(t *testing.T, mode uint8, ng bool, query string, body []byte) {
		m := wire.Message{Mode: "nope", Query: query, Body: body}
		if int(mode) < len(wire.Modes) {
			m.Mode = wire.Modes[mode]
		}
		d := Dialect3
		if ng {
			d = DialectNG
		}
		c, err := PlanMQTT(d, "awtrix/p", m, MQTTOptions{})
		if err != nil {
			var re *reqError
			st, b := ErrorReply(err)
			var r replyJSON
			if !errors.As(err, &re) || json.Unmarshal(b, &r) != nil || r.Code == "" || r.Error == "" || st != 400 && st != 413 {
				t.Fatalf("%v %s: %v answers %d %s", d, m.Mode, err, st, b)
			}
			return
		}
		if c.Topic == "" && c.State == "" || c.Field != "" && c.State == "" {
			t.Fatalf("%v %s: %s does nothing", d, m.Mode, showCommand(c))
		}
		if c.Topic != "" {
			if !validTopicPart(c.Topic) {
				t.Fatalf("%v %s: topic %q", d, m.Mode, c.Topic)
			}
			if n := publishSize(len("awtrix/p/")+len(c.Topic), len(c.Payload)); n > MaxClockPacket {
				t.Fatalf("%v %s: a PUBLISH of %d bytes", d, m.Mode, n)
			}
		}
		// The relay passes JSON or nothing (docs/API.md, bad_json); route3
		// checks only as much of the rest as it translates.
		if len(c.Payload) > 0 && !c.Text && !json.Valid(c.Payload) && (len(body) == 0 || json.Valid(body)) {
			t.Fatalf("%v %s: payload %q is not JSON", d, m.Mode, c.Payload)
		}
		if d == Dialect3 && c.Topic != "" && !strings.HasPrefix(c.Topic, "custom/") &&
			!slices.Contains(filters3, "/"+c.Topic) {
			t.Fatalf("AWTRIX 3 does not subscribe to %q", c.Topic)
		}
	})
}
