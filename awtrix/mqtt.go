package awtrix

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pixelrelay/relay/wire"
)

// Dialect is the MQTT API a clock speaks: which firmware it runs.
type Dialect uint8

const (
	DialectNone Dialect = iota // not known yet
	Dialect3                   // AWTRIX 3 (Blueforcer/awtrix3), String() "awtrix3"
	DialectNG                  // AWTRIX NG (Blueforcer/awtrix-ng), String() "awtrix-ng"
)

// String is the dialect's name, as replies and logs give it.
func (d Dialect) String() string {
	switch d {
	case DialectNone:
		return "none"
	case Dialect3:
		return "awtrix3"
	case DialectNG:
		return "awtrix-ng"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// filters3 are the topic filters AWTRIX 3 subscribes to below its prefix
// when it connects (src/MQTTManager.cpp, onMqttConnected). It sends one
// SUBSCRIBE each; any of them tells the dialect. brightness, timeformat
// and dateformat are subscribed to but not acted on. No filter is a
// suffix of another, so a filter names its prefix unambiguously.
var filters3 = []string{
	"/brightness", "/notify/dismiss", "/notify", "/custom/#", "/switch", "/settings",
	"/previousapp", "/nextapp", "/doupdate", "/apps", "/power", "/sleep",
	"/indicator1", "/indicator2", "/indicator3", "/timeformat", "/dateformat",
	"/reboot", "/moodlight", "/sound", "/rtttl", "/sendscreen", "/r2d2",
}

// filterNG is AWTRIX NG's one subscription below its prefix
// (src/transport/mqtt/MqttService.cpp).
const filterNG = "/cmd/#"

// DialectOf tells from one SUBSCRIBE topic filter which dialect a clock
// speaks and under which prefix: "P/notify", "P/custom/#", "P/sendscreen",
// ... (exactly the filters in AWTRIX 3's onMqttConnected list) are
// (Dialect3, "P", true); "P/cmd/#" is (DialectNG, "P", true). P is one or
// more topic levels, non-empty, without the wildcards '+' and '#' (and
// without U+0000, in valid UTF-8, as any MQTT topic). Anything else is
// ok=false.
//
// One filter can mislead: an AWTRIX 3 custom app's placeholders subscribe
// to topics of the user's choosing ("home/door/notify" would read as
// prefix "home/door"), as do AWTRIX NG's scripts. Both firmwares subscribe
// to their own topics at each connect before those (AWTRIX 3 starts with
// P/brightness, and its Home Assistant topics, if any, which tell nothing,
// come after its own; NG starts with P/cmd/#), so the first filter that
// tells a dialect is the one to believe.
func DialectOf(filter string) (d Dialect, prefix string, ok bool) {
	if p, found := strings.CutSuffix(filter, filterNG); found && validPrefix(p) {
		return DialectNG, p, true
	}
	for _, f := range filters3 {
		if p, found := strings.CutSuffix(filter, f); found && validPrefix(p) {
			return Dialect3, p, true
		}
	}
	return DialectNone, "", false
}

// validPrefix reports whether p can stand before a clock's topics: not
// empty, no wildcard, a topic name's characters.
func validPrefix(p string) bool {
	return p != "" && validTopicPart(p)
}

// validTopicPart reports whether s may be part of a PUBLISH's topic name
// (MQTT 3.1.1 §4.7: no wildcards, no U+0000, UTF-8).
func validTopicPart(s string) bool {
	return !strings.ContainsAny(s, "+#\x00") && utf8.ValidString(s)
}

// MaxClockPacket is the largest MQTT packet both firmwares take: the
// buffer PubSubClient reads a packet into (AWTRIX 3's
// MQTT_MAX_PACKET_SIZE, AWTRIX NG's kMqttBufferBytes). PubSubClient drops
// a larger one whole, silently.
const MaxClockPacket = 8192

// Command is what a message becomes for a clock over MQTT.
type Command struct {
	// Topic is the command topic below the prefix ("notify",
	// "custom/weather", "cmd/apps/next"); "" when the message is a read
	// answered from State.
	Topic   string
	Payload []byte // owned by the Command
	Text    bool   // Payload is plain text, not JSON (AWTRIX 3's rtttl, r2d2)
	// State, if set, is the state topic below the prefix whose latest
	// publish answers the message: with Topic "" the answer is the
	// clock's latest publish there (AWTRIX 3 "stats", "stats/effects",
	// "stats/transitions"; NG "state/device", "state/settings",
	// "state/capabilities"); with Topic set, the answer is the clock's
	// next publish there after the command ("screen" after "sendscreen";
	// NG "state/screen" after "cmd/screen/get").
	State string
	// Field, with State, picks one top-level field of that JSON state as
	// the answer (NG's state/capabilities "effects" / "transitions"); ""
	// for the whole document.
	Field string
	// Disruptive marks commands a relay refuses for a clock on an
	// unencrypted hop unless its operator allows them: reboot, sleep,
	// doupdate, settings (a write), apps (a write), and NG's equivalents
	// (device/reboot, device/sleep, settings, settings/reset,
	// apps/order). erase, resetSettings and reorder would be too, but
	// AWTRIX 3 has no topic for them.
	Disruptive bool
}

// MQTTOptions configure PlanMQTT.
type MQTTOptions struct {
	// Read, if set, answers a read of the AWTRIX 3 clock's HTTP API for
	// the translations that need one: a temporaryapp's lifetime, which
	// AWTRIX 2 counts in app loops and AWTRIX 3 in seconds, reads
	// "api/loop" (the apps in the loop) and "api/settings" (ATIME).
	// body is what the clock would answer; ok=false when it is not known.
	// PlanMQTT takes no context, so Read must not block (answer from
	// what is at hand).
	//
	// Over MQTT AWTRIX 3 publishes neither, so with Read nil (or not ok)
	// AWTRIX 3's defaults stand in, as they do over HTTP when the clock's
	// answer does not say: defaultLoop (5) apps plus the temporary app,
	// shown defaultAppTime (7) seconds each, so a lifetime of N loops is
	// N*42 seconds.
	Read func(path string) (body []byte, ok bool)
}

// PlanMQTT maps a message to the one Command for a clock of dialect d
// whose topics are below prefix (as DialectOf returned it). The returned
// error is always one ErrorReply turns into the agent's JSON error: 400
// bad_request (the body does not fit the mode, or an unknown mode), 400
// unsupported (a mode with no topic in that dialect; the message names
// the mode and the dialect, or what the firmware lacks), 413
// too_large_for_clock (the PUBLISH, prefix and topic included, would
// exceed MaxClockPacket, or the body a firmware parser's limit); a d that
// is not Dialect3 or DialectNG, or a prefix DialectOf would not give, is
// an internal error. m.Body is not kept.
//
// On AWTRIX 3 the message goes through the same checks and translations
// as over HTTP (route3's plan3); the HTTP call it becomes is then mapped
// to its topic (topics3, reads3). PlanMQTT never refuses a destructive
// mode itself: it marks the Command Disruptive and the relay decides.
// On AWTRIX NG the payloads are NG's own HTTP bodies and pass unchanged
// (routesNG).
func PlanMQTT(d Dialect, prefix string, m wire.Message, opt MQTTOptions) (Command, error) {
	if !validPrefix(prefix) {
		return Command{}, errBadPrefix
	}
	if !wire.ValidMode([]byte(m.Mode)) {
		return Command{}, badRequest("unknown mode %q", truncate(m.Mode, 32))
	}
	var c Command
	var err error
	switch d {
	case Dialect3:
		c, err = planMQTT3(m, opt)
	case DialectNG:
		c, err = planNG(m)
	default:
		return Command{}, fmt.Errorf("%w: %v", errNoDialect, d)
	}
	if err != nil {
		return Command{}, err
	}
	if c.Topic != "" {
		if n := publishSize(len(prefix)+1+len(c.Topic), len(c.Payload)); n > MaxClockPacket {
			return Command{}, tooLarge("%s: the MQTT PUBLISH would be %d bytes; %s takes at most %d", m.Mode, n, d, MaxClockPacket)
		}
	}
	return c, nil
}

// Errors of PlanMQTT that are the caller's, not the message's: ErrorReply
// answers them as internal errors.
var (
	errBadPrefix = errors.New("awtrix: MQTT prefix empty or not a topic name")
	errNoDialect = errors.New("awtrix: MQTT dialect not known")
)

// publishSize is the size of a QoS 0 PUBLISH: the fixed header (type and
// the remaining length, 1 to 4 bytes), the topic's length and the topic,
// and the payload. QoS 0 has no packet identifier.
func publishSize(topic, payload int) int {
	rem := 2 + topic + payload
	n := 1 + 1 + rem
	for v := rem >> 7; v > 0; v >>= 7 {
		n++
	}
	return n
}

// ErrorReply returns the HTTP-like status and JSON body the agent would
// answer for err (errTable): PlanMQTT's errors become what the HTTP
// forwarder answers for the same refusal. An error PlanMQTT did not
// return (nil included) is a 502 {"error":"internal error","code":"internal"}.
func ErrorReply(err error) (status int, body []byte) {
	return errorReplyOr(err, http.StatusBadGateway)
}

// AWTRIX 3 over MQTT (Blueforcer/awtrix3, src/MQTTManager.cpp): the HTTP
// routes plan3 calls, and the topics that do the same. processMqttMessage
// hands a topic's payload to the same function as the HTTP handler, so
// the bodies are the same. Every topic is in filters3 (a test checks).
// A route in neither table (api/reorder, api/erase, api/resetSettings,
// and the reads api/loop, api/apps, api/settings) has no topic.
var topics3 = map[string]struct {
	topic      string
	disruptive bool
}{
	"api/notify":         {"notify", false},
	"api/notify/dismiss": {"notify/dismiss", false},
	"api/power":          {"power", false},
	"api/sleep":          {"sleep", true},
	"api/switch":         {"switch", false},
	"api/nextapp":        {"nextapp", false},
	"api/previousapp":    {"previousapp", false},
	"api/reboot":         {"reboot", true},
	"api/indicator1":     {"indicator1", false},
	"api/indicator2":     {"indicator2", false},
	"api/indicator3":     {"indicator3", false},
	"api/moodlight":      {"moodlight", false},
	"api/sound":          {"sound", false},
	"api/rtttl":          {"rtttl", false},
	"api/r2d2":           {"r2d2", false},
	"api/settings":       {"settings", true}, // a write; the read has no topic
	"api/apps":           {"apps", true},     // likewise
	"api/doupdate":       {"doupdate", true},
	// api/custom?name=X is custom/X (planMQTT3).
}

// reads3 are AWTRIX 3's HTTP reads that its publishes answer: stats every
// 10 s, effects and transitions at each connect, and the screen when
// asked on sendscreen.
var reads3 = map[string]struct{ topic, state string }{
	"api/stats":       {"", "stats"},
	"api/effects":     {"", "stats/effects"},
	"api/transitions": {"", "stats/transitions"},
	"api/screen":      {"sendscreen", "screen"},
}

// planMQTT3 is plan3's call as an AWTRIX 3 topic.
func planMQTT3(m wire.Message, opt MQTTOptions) (Command, error) {
	env := env3{} // destructive modes are planned, not refused
	if opt.Read != nil {
		env.read = func(_ context.Context, path string) ([]byte, error) {
			body, _ := opt.Read(path) // not known: nil, and the defaults stand in
			return body, nil
		}
	}
	c, err := plan3(context.Background(), m, env)
	if err != nil {
		return Command{}, err
	}
	if c.read {
		r, ok := reads3[c.path]
		if !ok {
			return Command{}, noTopic3(m.Mode, c)
		}
		return Command{Topic: r.topic, State: r.state}, nil
	}
	if c.path == "api/custom" {
		// AWTRIX 3 takes the app's name from the topic's rest, / included,
		// as it takes it from ?name= over HTTP.
		name := c.query.Get("name")
		if !validTopicPart(name) {
			return Command{}, badRequest("%s: over MQTT the app's name is in the topic: it cannot hold + or # (or NUL, or bytes that are not UTF-8)", m.Mode)
		}
		return Command{Topic: "custom/" + name, Payload: c.body}, nil
	}
	t, ok := topics3[c.path]
	if !ok {
		return Command{}, noTopic3(m.Mode, c)
	}
	return Command{Topic: t.topic, Payload: c.body, Text: c.text, Disruptive: t.disruptive}, nil
}

// noTopic3 refuses a mode whose HTTP call AWTRIX 3 has no topic for.
func noTopic3(mode string, c call) error {
	return unsupported("mode %q has no MQTT topic on %s (over HTTP it is %s /%s)", mode, Dialect3, c.method, c.path)
}
