package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/mqttclock"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/webhook"
	"github.com/pixelrelay/relay/wire"
)

// End-to-end tests of stock clocks on MQTT: simulated AWTRIX 3 and AWTRIX
// NG clocks (internal/mqttclock, on the Paho client) take a relay node for
// their broker, and webhooks reach them over HTTPS, across a cluster.

// mqttCluster is one NATS server and two relay nodes of its cluster, both
// with MQTT on and webhook limits off (a table sends dozens of webhooks to
// one token from one address); mutate applies to both.
func mqttCluster(t *testing.T, mutate func(*server.Config)) (a, b *relaytest.Relay) {
	t.Helper()
	_, nodes := cluster(t, 2, func(c *server.Config) {
		relaytest.MQTT(c)
		relaytest.NoLimits(c)
		if mutate != nil {
			mutate(c)
		}
	})
	return nodes[0], nodes[1]
}

// dialClock connects a simulated clock to r's plain MQTT listener unless
// cfg names a broker; it is closed at the end of the test.
func dialClock(t *testing.T, r *relaytest.Relay, cfg mqttclock.Config) *mqttclock.Clock {
	t.Helper()
	if cfg.Broker == "" {
		cfg.Broker = "tcp://" + r.MQTTAddr().String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), relaytest.WaitTimeout)
	defer cancel()
	c, err := mqttclock.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("clock %s: %v", cfg.Prefix, err)
	}
	t.Cleanup(c.Close)
	return c
}

// nextCommand is the clock's next command; the test fails if none comes
// within relaytest.WaitTimeout.
func nextCommand(t *testing.T, c *mqttclock.Clock) mqttclock.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), relaytest.WaitTimeout)
	defer cancel()
	m, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("the clock got no command: %v", err)
	}
	return m
}

// expectCommand fails the test unless the clock's next command is payload
// on topic; it goes on, so that one wrong command does not shift every
// later one.
func expectCommand(t *testing.T, c *mqttclock.Clock, topic, payload string) {
	t.Helper()
	if m := nextCommand(t, c); m.Topic != topic || string(m.Payload) != payload {
		t.Errorf("the clock got %s %q, want %s %q", m.Topic, m.Payload, topic, payload)
	}
}

// hookAnswer is what a webhook's caller got.
type hookAnswer struct {
	status int
	body   []byte
	path   string // the Relay-Path header
}

// webhookTo sends a webhook to r: a GET for a read without a body, else a
// POST with a JSON body; query ("name=weather") is added to the URL.
func webhookTo(t *testing.T, r *relaytest.Relay, mode, query, tok, body string) hookAnswer {
	t.Helper()
	url := r.URL(mode, tok)
	if query != "" {
		url += "&" + query
	}
	method := http.MethodPost
	if body == "" && wire.IsRead(mode) {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.HTTP.Do(req)
	if err != nil {
		t.Fatalf("webhook %s: %v", mode, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatalf("webhook %s: body: %v", mode, err)
	}
	return hookAnswer{resp.StatusCode, b.Bytes(), resp.Header.Get(webhook.HeaderPath)}
}

// clockCase is one webhook to a clock and what it must come to.
type clockCase struct {
	mode, query, body string
	// topic and payload: the PUBLISH the clock must get, below its prefix;
	// no topic, nothing may reach it.
	topic, payload string
	// status and code: a refusal (0: 200). names must be in its error.
	status int
	code   string
	names  []string
	// reply: the clock's own answer the caller must see in clock_reply
	// (NG); "" for {"ok":true} on a 200.
	reply string
	// read checks a read's answer body.
	read func(t *testing.T, body []byte)
}

func (c clockCase) name() string {
	n := c.mode
	if c.query != "" {
		n += "?" + c.query
	}
	if len(c.body) > 60 {
		n += " " + c.body[:60] + "..."
	} else if c.body != "" {
		n += " " + c.body
	}
	return n
}

// sends is a command the clock must get, confirmed.
func sends(mode, query, body, topic, payload string) clockCase {
	return clockCase{mode: mode, query: query, body: body, topic: topic, payload: payload}
}

// forbidden is a disruptive command, refused by default.
func forbidden(mode, body string) clockCase {
	return clockCase{mode: mode, body: body, status: 403, code: "forbidden", names: []string{`"` + mode + `"`, "--mqtt-allow-disruptive"}}
}

// noTopic is a mode the dialect has no topic for.
func noTopic(mode, body, dialect string) clockCase {
	return clockCase{mode: mode, body: body, status: 400, code: "unsupported", names: []string{`"` + mode + `"`, dialect}}
}

// reads is a read answered from what the clock published; topic is the
// request it gets first, if any.
func reads(mode, body, topic string, check func(t *testing.T, body []byte)) clockCase {
	return clockCase{mode: mode, body: body, topic: topic, read: check}
}

// runClockCases sends each case's webhook to r for the clock at prefix and
// checks the caller's answer and what the clock got. An AWTRIX 3 command
// is followed by the sendscreen that confirms it; the cases run in order
// on one connection, so a stray PUBLISH shows as the next case's.
func runClockCases(t *testing.T, r *relaytest.Relay, clock *mqttclock.Clock, tok, prefix string, d mqttclock.Dialect, cases []clockCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name(), func(t *testing.T) {
			a := webhookTo(t, r, c.mode, c.query, tok, c.body)
			if a.path != router.PathMQTTPlain {
				t.Errorf("Relay-Path %q, want %s", a.path, router.PathMQTTPlain)
			}
			var got struct {
				OK         bool            `json:"ok"`
				Confirmed  string          `json:"confirmed"`
				Error      string          `json:"error"`
				Code       string          `json:"code"`
				ClockReply json.RawMessage `json:"clock_reply"`
			}
			json.Unmarshal(a.body, &got)
			switch {
			case c.status != 0:
				if a.status != c.status || got.Code != c.code {
					t.Fatalf("%d %s, want %d %s", a.status, a.body, c.status, c.code)
				}
				for _, n := range c.names {
					if !strings.Contains(got.Error, n) {
						t.Errorf("error %q does not name %s", got.Error, n)
					}
				}
			case a.status != 200:
				t.Fatalf("%d %s, want 200", a.status, a.body)
			case c.read != nil:
				c.read(t, a.body)
			case d == mqttclock.NG:
				if !got.OK || got.Confirmed != "result" || string(got.ClockReply) != `{"ok":true}` {
					t.Fatalf("body %s, want confirmed by the clock's result", a.body)
				}
			default:
				if !got.OK || got.Confirmed != "screen" {
					t.Fatalf("body %s, want confirmed by the screen", a.body)
				}
			}
			if c.reply != "" && !jsonEqual(got.ClockReply, c.reply) {
				t.Errorf("clock_reply %s, want %s", got.ClockReply, c.reply)
			}
			if c.topic == "" {
				return
			}
			expectCommand(t, clock, prefix+"/"+c.topic, c.payload)
			if d == mqttclock.AWTRIX3 && c.read == nil {
				expectCommand(t, clock, prefix+"/sendscreen", "")
			}
		})
	}
	// Nothing more reached the clock than the cases sent.
	a := webhookTo(t, r, "notify", "", tok, `{"text":"last"}`)
	if a.status != 200 {
		t.Fatalf("last webhook: %d %s", a.status, a.body)
	}
	topic := prefix + "/notify"
	if d == mqttclock.NG {
		topic = prefix + "/cmd/notify"
	}
	if m := nextCommand(t, clock); m.Topic != topic || !strings.Contains(string(m.Payload), "last") {
		t.Fatalf("after the cases the clock got %s %q, want the last notify", m.Topic, m.Payload)
	}
}

// coversModes fails the test unless cases have every mode of wire.Modes.
func coversModes(t *testing.T, cases []clockCase) {
	t.Helper()
	for _, m := range wire.Modes {
		if !slices.ContainsFunc(cases, func(c clockCase) bool { return c.mode == m }) {
			t.Errorf("no case for mode %q", m)
		}
	}
}

func jsonEqual(a []byte, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && jsonText(x) == jsonText(y)
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Fixed stats documents, so that a read can be compared byte for byte: an
// AWTRIX 3 P/stats (DisplayManager::getStats) and an NG P/state/device.
const (
	stats3 = `{"bat":100,"bat_raw":670,"type":0,"lux":18,"ldr_raw":223,"ram":154988,"bri":120,"temp":23.4,` +
		`"hum":40,"uptime":3600,"wifi_signal":-58,"messages":3,"version":"0.98","indicator1":false,` +
		`"indicator2":false,"indicator3":false,"app":"Time","uid":"awtrix_ab12cd","matrix":true,"ip_address":"192.0.2.42"}`
	statsNG = `{"version":"1.0.12","uid":"a4cf12ab34cd","boardType":"awtrixng","soc":"esp32","uptimeSeconds":3600,` +
		`"freeHeapBytes":118234,"fps":41,"brightness":120,"matrixPower":true,"currentApp":"Time","messageCount":3}`
)

// exactly checks that a read answers want, byte for byte.
func exactly(want string) func(*testing.T, []byte) {
	return func(t *testing.T, body []byte) {
		t.Helper()
		if string(body) != want {
			t.Fatalf("body %s, want %s", body, want)
		}
	}
}

// names checks that a read answers a JSON array of strings holding each
// of want.
func names(want ...string) func(*testing.T, []byte) {
	return func(t *testing.T, body []byte) {
		t.Helper()
		var got []string
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("body %s lacks %q", body, w)
			}
		}
	}
}

// screen3 checks AWTRIX 3's screen: the clock's pixels, as a JSON array.
func screen3(t *testing.T, body []byte) {
	t.Helper()
	var px []uint32
	if err := json.Unmarshal(body, &px); err != nil || !slices.Equal(px, mqttclock.DefaultScreen()) {
		t.Fatalf("screen %.80s...: %v, want the clock's pixels", body, err)
	}
}

// screenNG checks NG's state/screen: {"width","height","pixels"}.
func screenNG(t *testing.T, body []byte) {
	t.Helper()
	var s struct {
		Width, Height int
		Pixels        []uint32
	}
	if err := json.Unmarshal(body, &s); err != nil || s.Width != 32 || s.Height != 8 || !slices.Equal(s.Pixels, mqttclock.DefaultScreen()) {
		t.Fatalf("screen %.80s...: %v, want 32x8 and the clock's pixels", body, err)
	}
}

// cases3 is every mode on an AWTRIX 3 clock with a realistic body: AWTRIX
// 2's for the original cloud's modes, AWTRIX 3's for the rest (awtrix/doc.go,
// "# MQTT").
var cases3 = []clockCase{
	sends("draw", "", `{"draw":[{"type":"fill","color":[1,2,3]},{"type":"show"}]}`, "notify", `{"draw":[{"df":[0,0,32,8,"#010203"]}],"hold":true}`),
	sends("basics", "", `{"switchTo":"Date","fast":true}`, "switch", `{"fast":true,"name":"Date"}`),
	sends("basics", "", `{"app":"next"}`, "nextapp", ""),
	sends("basics", "", `{"soundfile":101}`, "sound", `{"sound":"0101"}`),
	reads("basics", `{"get":"version"}`, "", exactly(stats3)),
	{mode: "basics", body: `{"disable":"Date"}`, status: 403, code: "forbidden", names: []string{`"basics"`}}, // an apps write
	noTopic("basics", `{"get":"appList"}`, "awtrix3"),
	sends("app", "", `{"name":"test","force":false,"icon":6,"text":"Awtrix"}`, "custom/test", `{"icon":"6","text":"Awtrix"}`),
	sends("app", "", `{"remove":"test"}`, "custom/test", ""),
	forbidden("settings", `{"BRI":40,"ATIME":7}`),
	noTopic("settings", "", "awtrix3"),
	sends("notify", "", `{"text":"Doorbell","icon":6,"color":[255,0,0]}`, "notify", `{"color":[255,0,0],"icon":"6","text":"Doorbell"}`),
	sends("customapp", "", `{"ID":4,"text":"Google dropped"}`, "custom/customapp4", `{"text":"Google dropped"}`),
	// 2 loops x (AWTRIX 3's 5 apps + TestApp) x 7 s: the clock publishes
	// neither its loop nor its ATIME.
	sends("temporaryapp", "", `{"name":"TestApp","lifetime":2,"text":"x"}`, "custom/TestApp", `{"lifetime":84,"text":"x"}`),
	sends("dismiss", "", "", "notify/dismiss", ""),
	sends("indicator1", "", `{"color":[255,0,0],"blink":500}`, "indicator1", `{"color":[255,0,0],"blink":500}`),
	sends("indicator2", "", `{"color":"#00FF00","fade":1000}`, "indicator2", `{"color":"#00FF00","fade":1000}`),
	sends("indicator3", "", "", "indicator3", ""),
	sends("moodlight", "", `{"brightness":170,"kelvin":2300}`, "moodlight", `{"brightness":170,"kelvin":2300}`),
	sends("sound", "", `"alarm"`, "sound", `{"sound":"alarm"}`),
	sends("rtttl", "", `"tetris:d=4,o=5,b=160:e6,8b,8c6"`, "rtttl", `tetris:d=4,o=5,b=160:e6,8b,8c6`),
	sends("r2d2", "", `"hello"`, "r2d2", `hello`),
	forbidden("sleep", `60`),
	forbidden("reboot", ""),
	sends("power", "", `true`, "power", `{"power":true}`),
	sends("switch", "", `"Time"`, "switch", `{"name":"Time"}`),
	sends("nextapp", "", "", "nextapp", ""),
	sends("previousapp", "", "", "previousapp", ""),
	forbidden("apps", `[{"name":"Date","show":false,"pos":1}]`),
	noTopic("apps", "", "awtrix3"),
	noTopic("reorder", `["Time","Date"]`, "awtrix3"),
	sends("custom", "name=weather", `{"text":"21 C","icon":6}`, "custom/weather", `{"icon":"6","text":"21 C"}`),
	sends("custom", "name=weather", "", "custom/weather", ""),
	reads("stats", "", "", exactly(stats3)),
	reads("screen", "", "sendscreen", screen3),
	noTopic("loop", "", "awtrix3"),
	reads("effects", "", "", names("Fade", "Matrix", "ColorWaves")),
	reads("transitions", "", "", names("Random", "Slide", "Fade")),
	noTopic("erase", "", "awtrix3"),
	noTopic("resetSettings", "", "awtrix3"),
	forbidden("doupdate", ""),
	{mode: "notify", body: `{"text":"` + strings.Repeat("x", 8200) + `"}`, status: 413, code: "too_large_for_clock", names: []string{"6144"}}, // AWTRIX 3's notify parser
}

// disruptive3 are the commands a node with AllowDisruptive sends.
var disruptive3 = []clockCase{
	sends("reboot", "", "", "reboot", ""),
	sends("sleep", "", `60`, "sleep", `{"sleep":60}`),
	sends("doupdate", "", "", "doupdate", ""),
	sends("settings", "", `{"BRI":40,"ATIME":7}`, "settings", `{"ATIME":7,"BRI":40}`),
	sends("apps", "", `[{"name":"Date","show":false,"pos":1}]`, "apps", `[{"name":"Date","show":false,"pos":1}]`),
	sends("basics", "", `{"disable":"Date"}`, "apps", `[{"name":"Date","show":false}]`),
}

// ngError is AWTRIX NG's answer to a command it refuses.
const ngError = `{"ok":false,"error":{"code":"validation_failed","message":"textColor: expected #RRGGBB","field":"textColor"}}`

// ngResult answers as the firmware's validation does: a notify with a
// colour it cannot read is refused.
func ngResult(topic string, payload []byte) []byte {
	if strings.HasSuffix(topic, "/cmd/notify") && bytes.Contains(payload, []byte("not-a-colour")) {
		return []byte(ngError)
	}
	return nil
}

// casesNG is every mode on an AWTRIX NG clock: NG's bodies, which pass as
// they are; AWTRIX 2's modes have no topic on NG.
var casesNG = []clockCase{
	sends("notify", "", `{"text":"Doorbell","textColor":"#FF0000","durationMs":10000}`, "cmd/notify", `{"text":"Doorbell","textColor":"#FF0000","durationMs":10000}`),
	{mode: "notify", body: `{"text":"x","textColor":"not-a-colour"}`, topic: "cmd/notify", payload: `{"text":"x","textColor":"not-a-colour"}`,
		status: 400, code: "clock_refused", reply: ngError},
	sends("dismiss", "", "", "cmd/notify/dismiss", ""),
	sends("custom", "name=weather", `{"text":"21C","icon":"2422"}`, "cmd/apps/pushed/weather", `{"text":"21C","icon":"2422"}`),
	sends("custom", "name=stocks", `[{"text":"AAPL 189"},{"text":"MSFT 412"}]`, "cmd/apps/pushed/stocks", `[{"text":"AAPL 189"},{"text":"MSFT 412"}]`),
	sends("switch", "", `"Time"`, "cmd/apps/switch", `{"name":"Time"}`),
	sends("nextapp", "", "", "cmd/apps/next", ""),
	sends("previousapp", "", "", "cmd/apps/previous", ""),
	forbidden("reorder", `{"order":["Time","weather","Date"],"disabled":["Battery"]}`),
	forbidden("settings", `{"brightness":120,"autoBrightness":false}`),
	reads("settings", "", "", func(t *testing.T, body []byte) {
		var s struct{ Brightness int }
		if json.Unmarshal(body, &s) != nil || s.Brightness != 120 {
			t.Fatalf("settings %s, want the clock's state/settings", body)
		}
	}),
	forbidden("resetSettings", ""),
	sends("power", "", `true`, "cmd/display", `{"power":true}`),
	sends("moodlight", "", `{"color":"#3366FF","brightness":120}`, "cmd/display/moodlight", `{"color":"#3366FF","brightness":120}`),
	sends("indicator1", "", `{"color":"#FF0000","blinkMs":500}`, "cmd/indicators/1", `{"color":"#FF0000","blinkMs":500}`),
	sends("indicator2", "", `{"color":["HSV",120,255,255]}`, "cmd/indicators/2", `{"color":["HSV",120,255,255]}`),
	sends("indicator3", "", "", "cmd/indicators/3", ""),
	sends("sound", "", `"alarm"`, "cmd/audio/play", `{"sound":"alarm"}`),
	sends("rtttl", "", `"two:d=4,o=5,b=200:c,e"`, "cmd/audio/play", `{"rtttl":"two:d=4,o=5,b=200:c,e"}`),
	forbidden("sleep", `{"durationMs":60000}`),
	forbidden("reboot", ""),
	reads("stats", "", "", exactly(statsNG)),
	reads("screen", "", "cmd/screen/get", screenNG),
	reads("effects", "", "", names("Fade", "Matrix")),
	reads("transitions", "", "", names("Slide", "Melt")), // Melt: NG's own
	noTopic("draw", `{"draw":[{"type":"show"}]}`, "awtrix-ng"),
	noTopic("basics", `{"power":true}`, "awtrix-ng"),
	noTopic("app", `{"name":"test","text":"Awtrix"}`, "awtrix-ng"),
	noTopic("customapp", `{"ID":4,"text":"x"}`, "awtrix-ng"),
	noTopic("temporaryapp", `{"name":"T","lifetime":2,"text":"x"}`, "awtrix-ng"),
	noTopic("loop", "", "awtrix-ng"),
	noTopic("apps", "", "awtrix-ng"),
	noTopic("r2d2", `"hello"`, "awtrix-ng"),
	noTopic("erase", "", "awtrix-ng"),
	noTopic("doupdate", "", "awtrix-ng"),
	{mode: "custom", query: "name=we.ather", body: `{}`, status: 400, code: "bad_request", names: []string{"[A-Za-z0-9_-]"}},
}

// disruptiveNG are NG's commands a node with AllowDisruptive sends.
var disruptiveNG = []clockCase{
	sends("reorder", "", `{"order":["Time","Date"],"disabled":[]}`, "cmd/apps/order", `{"order":["Time","Date"],"disabled":[]}`),
	sends("settings", "", `{"brightness":120}`, "cmd/settings", `{"brightness":120}`),
	sends("resetSettings", "", "", "cmd/settings/reset", ""),
	sends("sleep", "", `{"durationMs":60000}`, "cmd/device/sleep", `{"durationMs":60000}`),
	sends("reboot", "", "", "cmd/device/reboot", ""),
}

// TestClockModesAcrossCluster: every mode, from a webhook on node A to a
// simulated clock on node B's plain MQTT, for both firmwares: the clock
// gets exactly the topic and payload its firmware reads, and the caller
// the status, the confirmation (AWTRIX 3's screen, NG's result) or the
// refusal, and Relay-Path mqtt-plain. Disruptive modes are 403 unless the
// clock's node allows them.
func TestClockModesAcrossCluster(t *testing.T) {
	a, b := mqttCluster(t, nil)
	coversModes(t, cases3)
	coversModes(t, casesNG)

	t.Run("awtrix3", func(t *testing.T) {
		tok := wire.NewToken()
		clock := dialClock(t, b, mqttclock.Config{User: "awtrix", Password: tok, Prefix: "awtrix_ab12cd", Stats: []byte(stats3)})
		if err := clock.PublishStats(); err != nil {
			t.Fatal(err)
		}
		runClockCases(t, a, clock, tok, "awtrix_ab12cd", mqttclock.AWTRIX3, cases3)
	})
	t.Run("awtrix-ng", func(t *testing.T) {
		tok := wire.NewToken()
		clock := dialClock(t, b, mqttclock.Config{User: "awtrix", Password: tok, Prefix: "home/clocks/kitchen",
			Dialect: mqttclock.NG, Stats: []byte(statsNG), Result: ngResult})
		runClockCases(t, a, clock, tok, "home/clocks/kitchen", mqttclock.NG, casesNG)
	})
	t.Run("allow disruptive", func(t *testing.T) {
		c := a.Sibling(t, func(c *server.Config) { c.MQTT.AllowDisruptive = true })
		tok3, tokNG := wire.NewToken(), wire.NewToken()
		clock3 := dialClock(t, c, mqttclock.Config{User: "u", Password: tok3, Prefix: "awtrix_0a0b0c"})
		clockNG := dialClock(t, c, mqttclock.Config{User: "u", Password: tokNG, Prefix: "0a0b0c0d0e0f", Dialect: mqttclock.NG})
		t.Run("awtrix3", func(t *testing.T) { runClockCases(t, a, clock3, tok3, "awtrix_0a0b0c", mqttclock.AWTRIX3, disruptive3) })
		t.Run("awtrix-ng", func(t *testing.T) { runClockCases(t, a, clockNG, tokNG, "0a0b0c0d0e0f", mqttclock.NG, disruptiveNG) })
	})
}

// TestClockOverTLS: a clock on the relay's MQTT-over-TLS listener gets its
// webhook, and the caller is told the last hop was mqtt-tls.
func TestClockOverTLS(t *testing.T) {
	r := relaytest.Start(t, relaytest.MQTT)
	tls := r.TLS.Clone()
	tls.ServerName = "localhost" // the dev certificate's name
	for _, d := range []mqttclock.Dialect{mqttclock.AWTRIX3, mqttclock.NG} {
		t.Run(d.String(), func(t *testing.T) {
			tok := wire.NewToken()
			clock := dialClock(t, r, mqttclock.Config{Broker: "tls://" + r.MQTTSAddr().String(), TLS: tls,
				User: "awtrix", Password: tok, Prefix: "clock", Dialect: d})
			a := webhookTo(t, r, "notify", "", tok, `{"text":"over TLS"}`)
			if a.status != 200 || a.path != router.PathMQTTTLS {
				t.Fatalf("%d %s, Relay-Path %q; want 200 over %s", a.status, a.body, a.path, router.PathMQTTTLS)
			}
			topic := "clock/notify"
			if d == mqttclock.NG {
				topic = "clock/cmd/notify"
			}
			expectCommand(t, clock, topic, `{"text":"over TLS"}`)
		})
	}
}

// TestClockDrainSpread: a node that drains closes its clocks' connections
// itself (MQTT 3.1.1 has no go-away), each at a random time within the
// reconnect spread, not all at once; until a clock's turn comes, webhooks
// to it through another node are delivered and answered 200, and none is
// lost at the close: each is delivered and 200, or not sent and answered
// so (404 no_device, 502 device_gone), and after the first of those no
// 200 follows. A clock that comes back to the draining node is refused.
func TestClockDrainSpread(t *testing.T) {
	const clocks, spread = 20, time.Second
	a, b := mqttCluster(t, func(c *server.Config) { c.ReconnectSpread = spread })
	// A device that ignores its GOAWAY holds b's drain open to its timeout
	// (relaytest's 2 s), so that b's metrics can be read after the clocks
	// are gone and before Stop returns.
	login(t, b, wire.NewToken())

	type sent struct {
		text   string
		status int
		code   string
	}
	type clockRun struct {
		clock *mqttclock.Clock
		tok   string
		lost  time.Duration // since the drain began
		sent  []sent        // during the drain, in order
	}
	runs := make([]*clockRun, clocks)
	for i := range runs {
		tok := wire.NewToken()
		runs[i] = &clockRun{tok: tok, clock: dialClock(t, b, mqttclock.Config{User: "awtrix", Password: tok,
			Prefix: fmt.Sprintf("clock%02d", i), Reconnect: true, ReconnectEvery: 100 * time.Millisecond})}
	}

	// Each reachable through a, on a caller's connection ready for the drain.
	var warm sync.WaitGroup
	for _, r := range runs {
		warm.Go(func() {
			if h := webhookTo(t, a, "notify", "", r.tok, `{"text":"before"}`); h.status != 200 {
				t.Errorf("before the drain: %d %s", h.status, h.body)
			}
		})
	}
	warm.Wait()
	for _, r := range runs {
		nextCommand(t, r.clock) // "before" and its sendscreen
		nextCommand(t, r.clock)
	}

	stopped := make(chan struct{})
	began := time.Now()
	go func() { b.Stop(); close(stopped) }()
	var wg sync.WaitGroup
	for _, r := range runs {
		lost := r.clock.Lost()
		wg.Go(func() {
			// Webhooks one after another, as long as the relay keeps the
			// connection.
			for n := 0; ; n++ {
				select {
				case <-lost:
					r.lost = time.Since(began)
					return
				default:
				}
				text := fmt.Sprintf("%s-%d", r.tok[:8], n)
				h := webhookTo(t, a, "notify", "", r.tok, `{"text":"`+text+`"}`)
				var e struct{ Code string }
				json.Unmarshal(h.body, &e)
				r.sent = append(r.sent, sent{text, h.status, e.Code})
			}
		})
	}
	wg.Wait()
	select {
	case <-stopped:
		t.Fatal("b stopped before the device that ignores its GOAWAY was closed: the drain did not wait for it")
	default:
	}
	if got := b.Metric(t, `relay_mqtt_closed_total{reason="drain"}`); got != clocks {
		t.Errorf(`relay_mqtt_closed_total{reason="drain"} %v, want %d`, got, clocks)
	}
	// The clocks closed first have come back (every 100 ms) by now, and
	// were told "server unavailable".
	if got := b.Metric(t, `relay_mqtt_connect_refusals_total{code="3"}`); got == 0 {
		t.Error("no clock that came back to the draining node was refused")
	}
	<-stopped

	var first, last time.Duration = time.Hour, 0
	outcomes := map[string]int{}
	for _, r := range runs {
		first, last = min(first, r.lost), max(last, r.lost)
		got := map[string]int{}
		for _, m := range r.clock.Commands() {
			got[string(m.Payload)]++
		}
		failed := false
		for _, s := range r.sent {
			outcomes[fmt.Sprint(s.status, " ", s.code)]++
			delivered := got[`{"text":"`+s.text+`"}`]
			switch {
			case s.status == 200 && delivered != 1:
				t.Errorf("%s: answered 200, reached the clock %d times", s.text, delivered)
			case s.status == 200 && failed:
				t.Errorf("%s: answered 200 after an earlier webhook to the clock failed", s.text)
			case s.status != 200 && delivered != 0:
				t.Errorf("%s: reached the clock, answered %d %s", s.text, s.status, s.code)
			case s.status == 404 && s.code == "no_device", s.status == 502 && s.code == "device_gone":
				failed = true
			case s.status != 200:
				t.Errorf("%s: answered %d %s", s.text, s.status, s.code)
			}
		}
		// A webhook takes milliseconds (tens under make stress): a clock
		// closed later than this got at least one.
		if r.lost > 800*time.Millisecond && (len(r.sent) == 0 || r.sent[0].status != 200) {
			t.Errorf("clock closed %v into the drain: no webhook answered 200 before (%v)", r.lost, r.sent)
		}
		if r.clock.Connected() {
			t.Error("a clock is connected again to the node that drained")
		}
	}
	t.Logf("clocks closed from %v to %v into the drain; webhooks meanwhile: %v", first, last, outcomes)
	if last-first < spread*3/10 {
		t.Errorf("clocks closed from %v to %v: not spread over the %v window", first, last, spread)
	}
	// Not at the drain's timeout (relaytest's 2 s), when the rest is
	// closed at once: the spread is 1 s, and the margin is for a loaded
	// machine (make stress) whose timers fire late.
	if last > 1900*time.Millisecond {
		t.Errorf("the last clock closed %v into the drain: at the drain's timeout, not within the %v spread", last, spread)
	}
}

// recorder is a device handler that keeps every message body it answers.
type recorder struct {
	name string
	mu   sync.Mutex // guards got
	got  []string
}

func (r *recorder) HandleMessage(_ context.Context, m wire.Message) (int, []byte) {
	r.mu.Lock()
	r.got = append(r.got, string(m.Body))
	r.mu.Unlock()
	return 200, []byte(`{"device":"` + r.name + `"}`)
}

func (r *recorder) bodies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestClockTakeoverAcrossCluster: one token moves from a QUIC agent on
// node A to a stock clock on node B's MQTT, and back to a QUIC agent on A.
// Webhooks to A right before and right after each move are all answered
// 200 by the device that holds the token then, and each reaches that
// device exactly once.
func TestClockTakeoverAcrossCluster(t *testing.T) {
	a, b := mqttCluster(t, nil)
	tok := wire.NewToken()
	send := func(batch string, wantPath string) []string {
		t.Helper()
		var bodies []string
		for i := range 3 {
			body := fmt.Sprintf(`{"text":"%s-%d"}`, batch, i)
			if h := webhookTo(t, a, "notify", "", tok, body); h.status != 200 || h.path != wantPath {
				t.Fatalf("%s: %d %s, Relay-Path %q; want 200, %q", batch, h.status, h.body, h.path, wantPath)
			}
			bodies = append(bodies, body)
		}
		return bodies
	}

	first := &recorder{name: "first"}
	_, served := a.Dial(t, tok, first)
	toFirst := send("quic-a", "")

	clock := dialClock(t, b, mqttclock.Config{User: "awtrix", Password: tok, Prefix: "awtrix_ab12cd"})
	toClock := send("mqtt-b", router.PathMQTTPlain)
	if err := <-served; !errors.Is(err, device.ErrReplaced) {
		t.Fatalf("the QUIC agent on A ended with %v, want replaced", err)
	}

	second := &recorder{name: "second"}
	lost := clock.Lost()
	a.Dial(t, tok, second)
	toSecond := send("quic-a-again", "")
	select {
	case <-lost:
	case <-time.After(relaytest.WaitTimeout):
		t.Fatal("the clock's connection stayed open after the QUIC agent took its token")
	}

	if got := first.bodies(); !slices.Equal(got, toFirst) {
		t.Errorf("the first QUIC agent got %q, want %q", got, toFirst)
	}
	var atClock []string
	for _, m := range clock.Commands() {
		if m.Topic == "awtrix_ab12cd/notify" {
			atClock = append(atClock, string(m.Payload))
		}
	}
	if !slices.Equal(atClock, toClock) {
		t.Errorf("the clock got %q, want %q", atClock, toClock)
	}
	if got := second.bodies(); !slices.Equal(got, toSecond) {
		t.Errorf("the second QUIC agent got %q, want %q", got, toSecond)
	}
	if n := metric(t, a, "relay_takeovers_total") + metric(t, b, "relay_takeovers_total"); n != 2 {
		t.Errorf("takeovers counted %v, want 2", n)
	}
	if n := metric(t, b, `relay_mqtt_closed_total{reason="replaced"}`); n != 1 {
		t.Errorf(`B's relay_mqtt_closed_total{reason="replaced"} %v, want 1`, n)
	}
}

// busyClocks runs stock clocks on r's MQTT listeners as TestLogsHoldNoSecrets
// needs them: both firmwares, plain and TLS, webhooks with payloads both
// ways (a command, the stats and screen the clock publishes, an NG error),
// a wrong password, and two takeovers of held (from whichever device holds
// it, then from that clock). It returns what the relay's logs must not
// hold: tokens, user names, client ids, prefixes, payloads.
func busyClocks(t *testing.T, r *relaytest.Relay, held string) []string {
	t.Helper()
	id := func(what string) string { return what + "-" + strings.ToLower(wire.NewToken()[:10]) }
	secret := id("secret-payload")
	tls := r.TLS.Clone()
	tls.ServerName = "localhost"
	var secrets []string
	dial := func(d mqttclock.Dialect, tok, broker string) *mqttclock.Clock {
		t.Helper()
		cfg := mqttclock.Config{Broker: broker, TLS: tls, User: id("user"), Password: tok, ClientID: id("client"), Prefix: id("prefix"), Dialect: d,
			Result: func(string, []byte) []byte { return []byte(`{"ok":false,"error":{"message":"` + secret + `-ng"}}`) }}
		secrets = append(secrets, tok, cfg.User, cfg.ClientID, cfg.Prefix)
		return dialClock(t, r, cfg)
	}
	plain, over := "tcp://"+r.MQTTAddr().String(), "tls://"+r.MQTTSAddr().String()

	tok3, tokNG := wire.NewToken(), wire.NewToken()
	dial(mqttclock.AWTRIX3, tok3, plain).PublishStats() // holds 192.0.2.42
	dial(mqttclock.NG, tokNG, over)
	for _, h := range []struct {
		mode, tok, body string
		status          int
	}{
		{"notify", tok3, `{"text":"` + secret + `-3"}`, 200},
		{"stats", tok3, "", 200},
		{"screen", tok3, "", 200},
		{"reboot", tok3, "", 403},
		{"notify", tokNG, `{"text":"` + secret + `-to-ng"}`, 400}, // the clock's error
		{"stats", tokNG, "", 200},
	} {
		if a := webhookTo(t, r, h.mode, "", h.tok, h.body); a.status != h.status {
			t.Fatalf("%s: %d %s, want %d", h.mode, a.status, a.body, h.status)
		}
	}

	// Any well-formed token logs in (devices make their own); a password
	// that is no token is refused.
	wrong := "hunter2!" + wire.NewToken()
	ctx, cancel := context.WithTimeout(context.Background(), relaytest.WaitTimeout)
	defer cancel()
	user := id("user")
	if _, err := mqttclock.Dial(ctx, mqttclock.Config{Broker: plain, User: user, Password: wrong, Prefix: id("prefix")}); !errors.Is(err, mqttclock.ErrBadCredentials) {
		t.Fatalf("a clock with a wrong password: %v, want bad user name or password", err)
	}
	secrets = append(secrets, wrong, user)

	dial(mqttclock.AWTRIX3, held, plain)
	dial(mqttclock.NG, held, over)
	if a := webhookTo(t, r, "notify", "", held, `{"text":"`+secret+`-held"}`); a.status != 400 || a.path != router.PathMQTTTLS {
		t.Fatalf("after the takeovers: %d %s %q, want the NG clock's 400 over TLS", a.status, a.body, a.path)
	}
	return append(secrets, secret, "192.0.2.42")
}
