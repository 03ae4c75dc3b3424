package awtrix

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pixelrelay/relay/wire"
)

// The AWTRIX 3 firmware parses a notification into a 6 KiB document and a
// custom app (drawings included) into an 8 KiB one: a larger body fails on
// the clock, so it never leaves the agent.
const (
	maxNotify3 = 6 << 10
	maxCustom3 = 8 << 10
)

// route3 maps a message to the calls AWTRIX 3's HTTP API wants: plan3's
// one call, with this Forwarder's reads and its AllowDestructive.
func (f *Forwarder) route3(ctx context.Context, m wire.Message) ([]call, error) {
	c, err := plan3(ctx, m, env3{refuseDestructive: !f.opt.AllowDestructive, read: f.readBody})
	if err != nil {
		return nil, err
	}
	return []call{c}, nil
}

// readBody is the clock's answer to GET path: route3's reads.
func (f *Forwarder) readBody(ctx context.Context, path string) ([]byte, error) {
	_, body, _, err := f.send(ctx, read(path))
	return body, err
}

// env3 is what plan3 needs besides the message: where the HTTP forwarder
// and the MQTT planner (mqtt.go) differ.
type env3 struct {
	// refuseDestructive makes erase, resetSettings and doupdate
	// errForbidden (the agent without --allow-destructive). The MQTT
	// planner plans them and marks the Command; the relay decides.
	refuseDestructive bool
	// read answers a read of the clock's API (a path below the base,
	// "api/loop") with the clock's body. nil: there is no read, and
	// AWTRIX 3's defaults stand in for the answer.
	read func(ctx context.Context, path string) ([]byte, error)
}

// plan3 maps a message to the one call AWTRIX 3's HTTP API wants
// (Blueforcer/awtrix3, src/ServerManager.cpp). It checks the body before
// anything is sent: a message the clock cannot take never leaves the
// agent. The call owns its body: net/http may still read a request body
// after Client.Do has returned, and m.Body is only valid until
// HandleMessage returns. The MQTT planner goes through here too, so that
// both transports check and translate the same way; every mode is one
// call (a temporary app's lifetime reads the clock while planning).
func plan3(ctx context.Context, m wire.Message, env env3) (call, error) {
	mode, body := m.Mode, bytes.TrimSpace(m.Body)
	switch mode {
	case "notify":
		obj, err := object(mode, body)
		if err != nil {
			return call{}, err
		}
		out, err := translate(mode, obj, toNotify)
		if err != nil {
			return call{}, err
		}
		return post("api/notify", marshal(out), maxNotify3, mode)
	case "draw":
		b, err := translateDraw(body)
		if err != nil {
			return call{}, err
		}
		return post("api/notify", b, maxNotify3, mode)
	case "custom":
		name := queryName(m.Query)
		if name == "" {
			return call{}, badRequest("custom: the app's name goes in ?name= (mode=custom&name=weather)")
		}
		return custom3(mode, name, body)
	case "app", "customapp", "temporaryapp":
		return app2to3(ctx, env, mode, body)
	case "settings":
		if len(body) == 0 {
			return read("api/settings"), nil
		}
		return settings2to3(body)
	case "basics":
		return basics2to3(body)
	case "dismiss", "nextapp", "previousapp", "reboot":
		if len(body) > 0 && string(body) != "{}" {
			return call{}, badRequest("%s takes no body", mode)
		}
		path := "api/" + mode
		if mode == "dismiss" {
			path = "api/notify/dismiss"
		}
		return call{method: http.MethodPost, path: path}, nil
	case "indicator1", "indicator2", "indicator3", "moodlight":
		// An empty body turns it off.
		if len(body) == 0 {
			return call{method: http.MethodPost, path: "api/" + mode}, nil
		}
		obj, err := object(mode, body)
		if err != nil {
			return call{}, err
		}
		if c, ok := obj["color"]; ok && string(bytes.TrimSpace(c)) != `"0"` {
			if _, ok := hexColor(c); !ok {
				return call{}, badRequest(`%s: "color" must be "#RRGGBB" or [r,g,b]`, mode)
			}
		}
		return post("api/"+mode, bytes.Clone(body), 512, mode)
	case "sound":
		return sound3(body)
	case "rtttl", "r2d2":
		return plainText(mode, body)
	case "sleep":
		return wrapped(mode, body, "sleep", kInt)
	case "power":
		return wrapped(mode, body, "power", kBool)
	case "switch":
		return switch3(body)
	case "apps":
		if len(body) == 0 {
			return read("api/apps"), nil
		}
		if body[0] != '[' && body[0] != '{' {
			return call{}, badRequest(`apps: body must be [{"name":"Time","show":true,"pos":0}, ...] or one such object`)
		}
		return post("api/apps", bytes.Clone(body), 2048, mode)
	case "reorder":
		var names []string
		if json.Unmarshal(body, &names) != nil || len(names) == 0 {
			return call{}, badRequest(`reorder: body must be the apps' names in order, ["Time","Date",...]`)
		}
		return post("api/reorder", bytes.Clone(body), 2048, mode)
	case "stats", "screen", "loop", "effects", "transitions":
		if len(body) > 0 {
			return call{}, badRequest("%s is a read: no body (GET /cloud?mode=%s)", mode, mode)
		}
		return read("api/" + mode), nil
	case "erase", "resetSettings", "doupdate":
		if env.refuseDestructive {
			return call{}, errForbidden
		}
		return call{method: http.MethodPost, path: "api/" + mode}, nil
	}
	return call{}, badRequest("unknown mode %q", truncate(mode, 32))
}

// post is a JSON POST, refused when body is over the clock's limit.
func post(path string, body []byte, limit int, mode string) (call, error) {
	if limit > 0 && len(body) > limit {
		return call{}, tooLarge("%s: the body is %d bytes; the clock parses at most %d", mode, len(body), limit)
	}
	return call{method: http.MethodPost, path: path, body: body}, nil
}

// read is a GET whose answer is the clock's JSON.
func read(path string) call { return call{method: http.MethodGet, path: path, read: true} }

// marshal encodes a translated object; its values are valid JSON already.
func marshal(m map[string]json.RawMessage) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic("awtrix: marshal of checked JSON: " + err.Error())
	}
	return b
}

// queryName is the name parameter of a message's query.
func queryName(q string) string {
	v, err := url.ParseQuery(q)
	if err != nil {
		return ""
	}
	return v.Get("name")
}

// custom3 is AWTRIX 3's own custom app: an object, an array of objects
// (pages name0, name1, ...), or nothing (delete the app and its pages).
// AWTRIX 2 keys in it are translated as for the older modes.
func custom3(mode, name string, body []byte) (call, error) {
	q := url.Values{"name": {name}}
	if len(body) == 0 || string(body) == "{}" {
		return call{method: http.MethodPost, path: "api/custom", query: q}, nil
	}
	var b []byte
	if body[0] == '[' {
		var pages []map[string]json.RawMessage
		if json.Unmarshal(body, &pages) != nil || len(pages) == 0 || slicesContainsNil(pages) {
			return call{}, badRequest("custom: body must be an object, a non-empty array of objects (one app per page), or empty (delete)")
		}
		out := make([]map[string]json.RawMessage, len(pages))
		for i, p := range pages {
			t, err := translate(fmt.Sprintf("custom[%d]", i), p, toApp)
			if err != nil {
				return call{}, err
			}
			out[i] = t
		}
		b, _ = json.Marshal(out)
	} else {
		obj, err := object(mode, body)
		if err != nil {
			return call{}, err
		}
		out, err := translate(mode, obj, toApp)
		if err != nil {
			return call{}, err
		}
		b = marshal(out)
	}
	c, err := post("api/custom", b, maxCustom3, mode)
	c.query = q
	return c, err
}

func slicesContainsNil(pages []map[string]json.RawMessage) bool {
	for _, p := range pages {
		if p == nil {
			return true
		}
	}
	return false
}

// app2to3 maps AWTRIX 2's apps to AWTRIX 3's custom apps, named in the
// query: app and temporaryapp by "name", customapp by "ID" (the AWTRIX 2
// CustomApp's slot) as customapp<ID>. {"remove": NAME} deletes. A
// temporary app's lifetime counts app loops in AWTRIX 2 and seconds in
// AWTRIX 3: lifetimeSeconds asks the clock how long a loop takes.
func app2to3(ctx context.Context, env env3, mode string, body []byte) (call, error) {
	obj, err := object(mode, body)
	if err != nil {
		return call{}, err
	}
	if raw, ok := obj["remove"]; ok {
		name, err := nonEmptyString(raw)
		if err != nil || len(obj) != 1 {
			return call{}, badRequest("%s: {\"remove\": NAME} takes the app's name and nothing else", mode)
		}
		return call{method: http.MethodPost, path: "api/custom", query: url.Values{"name": {name}}}, nil
	}
	var name string
	if raw, ok := obj["ID"]; ok && mode == "customapp" {
		id, ok := wholeNumber(raw)
		if !ok || id < 0 || id > 9999 {
			return call{}, badRequest("customapp: \"ID\" must be the CustomApp's number")
		}
		if _, also := obj["name"]; also {
			return call{}, badRequest("customapp: give \"ID\" or \"name\", not both")
		}
		name = "customapp" + strconv.FormatInt(id, 10)
		delete(obj, "ID")
	} else {
		raw, ok := obj["name"]
		if name, err = nonEmptyString(raw); !ok || err != nil {
			return call{}, badRequest("%s: missing \"name\": AWTRIX 3 custom apps are named", mode)
		}
		delete(obj, "name")
	}
	if raw, ok := obj["lifetime"]; ok && mode == "temporaryapp" {
		loops, ok := wholeNumber(raw)
		if !ok || loops < 1 || loops > 1000 {
			return call{}, badRequest("temporaryapp: \"lifetime\" must be a number of app loops, 1 to 1000")
		}
		secs, err := lifetimeSeconds(ctx, env.read, name, loops)
		if err != nil {
			return call{}, err
		}
		obj["lifetime"] = json.RawMessage(strconv.FormatInt(secs, 10))
	}
	out, err := translate(mode, obj, toApp)
	if err != nil {
		return call{}, err
	}
	c, err := post("api/custom", marshal(out), maxCustom3, mode)
	c.query = url.Values{"name": {name}}
	return c, err
}

// AWTRIX 3's defaults, for a clock whose loop or settings do not say.
const (
	defaultAppTime = 7 // ATIME, seconds an app is shown
	defaultLoop    = 5 // Time, Date, Temperature, Humidity, Battery
)

// lifetimeSeconds is how long loops turns of the clock's app loop take
// with the temporary app name in it: AWTRIX 2 counts a temporary app's
// lifetime in loops, AWTRIX 3 in seconds. It reads the loop (GET
// /api/loop) and ATIME (GET /api/settings); with read nil, or an answer
// that does not say, AWTRIX 3's defaults stand in: defaultLoop apps (and
// the temporary app) shown defaultAppTime seconds each.
func lifetimeSeconds(ctx context.Context, read func(context.Context, string) ([]byte, error), name string, loops int64) (int64, error) {
	var loopBody, settingsBody []byte
	if read != nil {
		var err error
		if loopBody, err = read(ctx, "api/loop"); err != nil {
			return 0, err
		}
		if settingsBody, err = read(ctx, "api/settings"); err != nil {
			return 0, err
		}
	}
	var loop map[string]json.RawMessage
	apps := int64(defaultLoop)
	if json.Unmarshal(loopBody, &loop) == nil && len(loop) > 0 {
		apps = int64(len(loop))
	}
	if _, in := loop[name]; !in {
		apps++ // the app joins the loop
	}
	var s struct{ ATIME *float64 }
	atime := int64(defaultAppTime)
	if json.Unmarshal(settingsBody, &s) == nil && s.ATIME != nil && *s.ATIME >= 1 {
		atime = int64(*s.ATIME)
	}
	return loops * apps * atime, nil
}

// settings2to3 passes AWTRIX 3's settings (upper-case keys: BRI, ATIME,
// TEFF, ...) and translates AWTRIX 2's Brightness; any other AWTRIX 2
// setting (mixed case) is refused by name rather than ignored by the
// clock.
func settings2to3(body []byte) (call, error) {
	obj, err := object("settings", body)
	if err != nil {
		return call{}, err
	}
	out := make(map[string]json.RawMessage, len(obj))
	for k, v := range obj {
		switch {
		case k == "Brightness":
			n, ok := wholeNumber(v)
			if !ok || n < 0 || n > 255 {
				return call{}, badRequest("settings: \"Brightness\" must be 0 to 255")
			}
			if _, dup := obj["BRI"]; dup {
				return call{}, badRequest("settings: \"Brightness\" and \"BRI\" both set the brightness")
			}
			out["BRI"] = v
		case strings.ToUpper(k) == k:
			out[k] = v
		default:
			return call{}, unsupported("settings: %q is not an AWTRIX 3 setting (AWTRIX 3's are upper case: BRI, ATIME, TEFF, TCOL, ...; AWTRIX 2's Brightness becomes BRI)", truncate(k, 32))
		}
	}
	return post("api/settings", marshal(out), 2048, "settings")
}

// basics2to3 maps AWTRIX 2's basic controls, one per message, to AWTRIX
// 3's endpoints.
func basics2to3(body []byte) (call, error) {
	obj, err := object("basics", body)
	if err != nil {
		return call{}, err
	}
	var key string
	for _, k := range []string{"power", "switchTo", "app", "disable", "enable", "soundfile", "appList", "get",
		"timer", "stopwatch", "showAnimation", "yeelight"} {
		if _, ok := obj[k]; ok {
			if key != "" {
				return call{}, badRequest("basics: one of %q and %q per message", key, k)
			}
			key = k
		}
	}
	raw := obj[key]
	switch key {
	case "power":
		return wrapped("basics", raw, "power", kBool)
	case "switchTo":
		name, err := nonEmptyString(raw)
		if err != nil {
			return call{}, badRequest("basics: \"switchTo\" must be an app's name")
		}
		sw := map[string]any{"name": name}
		if fast, ok := obj["fast"]; ok {
			var b bool
			if json.Unmarshal(fast, &b) != nil || isNull(fast) {
				return call{}, badRequest("basics: \"fast\" must be true or false")
			}
			sw["fast"] = b
		}
		b, _ := json.Marshal(sw)
		return call{method: http.MethodPost, path: "api/switch", body: b}, nil
	case "app":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return call{}, badRequest("basics: \"app\" must be a string")
		}
		switch strings.ToLower(s) {
		case "next":
			return call{method: http.MethodPost, path: "api/nextapp"}, nil
		case "previous", "prev", "back": // AWTRIX 2 documents "back"
			return call{method: http.MethodPost, path: "api/previousapp"}, nil
		}
		return call{}, unsupported("basics: \"app\": %q has no AWTRIX 3 equivalent (next and back do; AWTRIX 3 cannot pause or hold its loop)", truncate(s, 32))
	case "disable", "enable":
		name, err := nonEmptyString(raw)
		if err != nil {
			return call{}, badRequest("basics: %q must be an app's name", key)
		}
		b, _ := json.Marshal([]map[string]any{{"name": name, "show": key == "enable"}})
		return call{method: http.MethodPost, path: "api/apps", body: b}, nil
	case "soundfile":
		n, ok := wholeNumber(raw)
		if !ok || n < 0 || n > 9999 {
			return call{}, badRequest("basics: \"soundfile\" must be the MP3's number, 0 to 9999")
		}
		return call{method: http.MethodPost, path: "api/sound", body: marshal(map[string]json.RawMessage{"sound": quote(fmt.Sprintf("%04d", n))})}, nil
	case "appList":
		var names []string
		if json.Unmarshal(raw, &names) != nil || len(names) == 0 {
			return call{}, unsupported("basics: \"appList\" must be the apps' names in order (AWTRIX 3 has no reset of the loop)")
		}
		b, _ := json.Marshal(names)
		return call{method: http.MethodPost, path: "api/reorder", body: b}, nil
	case "get":
		var what string
		json.Unmarshal(raw, &what)
		switch what {
		case "settings":
			return read("api/settings"), nil
		case "appList":
			return read("api/loop"), nil
		case "installedApps":
			return read("api/apps"), nil
		case "version", "uptime", "powerState":
			return read("api/stats"), nil // holds version, uptime and matrix (on/off)
		}
		return call{}, unsupported("basics: \"get\": %q has no AWTRIX 3 equivalent (settings, appList, installedApps, version, uptime and powerState do)", truncate(what, 32))
	case "timer", "stopwatch", "showAnimation", "yeelight":
		return call{}, unsupported("basics: %q has no AWTRIX 3 equivalent", key)
	}
	return call{}, unsupported("basics: AWTRIX 3 knows power, switchTo, app, enable, disable, soundfile, appList and get")
}

// sound3 plays a melody (RTTTL file) or an MP3 by number: {"sound":
// NAME}, the name alone as a JSON string, or the MP3's number.
func sound3(body []byte) (call, error) {
	var name string
	switch n, isNum := wholeNumber(body); {
	case isNum && n >= 0 && n <= 9999:
		name = fmt.Sprintf("%04d", n)
	case json.Unmarshal(body, &name) == nil && name != "":
	default:
		obj, err := object("sound", body)
		if err != nil {
			return call{}, badRequest(`sound: body must be {"sound":"alarm"}, "alarm", or an MP3's number`)
		}
		if name, err = nonEmptyString(obj["sound"]); err != nil {
			return call{}, badRequest(`sound: "sound" must be the melody's file name (without extension) or an MP3's number`)
		}
	}
	return call{method: http.MethodPost, path: "api/sound", body: marshal(map[string]json.RawMessage{"sound": quote(name)})}, nil
}

// plainText sends rtttl's and r2d2's string as the plain text AWTRIX 3
// reads: a JSON string, or {"rtttl": ...} / {"r2d2": ...}.
func plainText(mode string, body []byte) (call, error) {
	var s string
	if err := json.Unmarshal(body, &s); err != nil || isNull(body) {
		obj, err := object(mode, body)
		if err == nil {
			s, err = nonEmptyString(obj[mode])
		}
		if err != nil {
			return call{}, badRequest("%s: body must be the string as JSON (\"...\"), {\"%s\": \"...\"}, or text with Content-Type: text/plain", mode, mode)
		}
	}
	if s == "" || len(s) > 2048 {
		return call{}, badRequest("%s: the string must be 1 to 2048 bytes", mode)
	}
	return call{method: http.MethodPost, path: "api/" + mode, body: []byte(s), text: true}, nil
}

// wrapped accepts {key: value} or the value alone, of kind k, and sends
// {key: value} to /api/KEY (power, sleep).
func wrapped(mode string, body []byte, key string, k kind) (call, error) {
	v := json.RawMessage(body)
	if obj, err := object(mode, body); err == nil {
		if len(obj) != 1 || obj[key] == nil {
			return call{}, badRequest("%s: body must be {%q: %s} or the value alone", mode, key, kindNames[k])
		}
		v = obj[key]
	}
	if ok := k == kInt && isCount(v) || k == kBool && isBool(v); !ok {
		return call{}, badRequest("%s: %q must be %s", mode, key, kindNames[k])
	}
	return call{method: http.MethodPost, path: "api/" + key, body: marshal(map[string]json.RawMessage{key: v})}, nil
}

// isCount reports whether v is a whole number >= 0.
func isCount(v json.RawMessage) bool {
	n, ok := wholeNumber(v)
	return ok && n >= 0
}

// isBool reports whether v is true or false.
func isBool(v json.RawMessage) bool {
	s := string(bytes.TrimSpace(v))
	return s == "true" || s == "false"
}

// switch3 shows an app: {"name": NAME, "fast": bool} or the name alone.
func switch3(body []byte) (call, error) {
	var name string
	if json.Unmarshal(body, &name) == nil && name != "" {
		return call{method: http.MethodPost, path: "api/switch", body: marshal(map[string]json.RawMessage{"name": quote(name)})}, nil
	}
	obj, err := object("switch", body)
	if err == nil {
		_, err = nonEmptyString(obj["name"])
	}
	if err != nil {
		return call{}, badRequest(`switch: body must be {"name":"Time"} (and "fast": true to skip the transition), or the name alone`)
	}
	if fast, ok := obj["fast"]; ok && !isBool(fast) {
		return call{}, badRequest(`switch: "fast" must be true or false`)
	}
	return call{method: http.MethodPost, path: "api/switch", body: bytes.Clone(body)}, nil
}

// route2 maps a message to the AWTRIX 2 host's API (/api/v3/ENDPOINT):
// its own modes pass as they are; AWTRIX 3's map to the basic controls
// that do the same; the rest AWTRIX 2 cannot do.
func route2(m wire.Message) (call, error) {
	mode, body := m.Mode, bytes.TrimSpace(m.Body)
	basics := func(v map[string]any) (call, error) {
		b, _ := json.Marshal(v)
		return call{method: http.MethodPost, path: "api/v3/basics", body: b, read: v["get"] != nil}, nil
	}
	switch mode {
	case "settings":
		if len(body) == 0 {
			return basics(map[string]any{"get": "settings"})
		}
		fallthrough
	case "draw", "basics", "app", "notify", "customapp", "temporaryapp":
		if len(body) == 0 {
			return call{}, badRequest("%s: the AWTRIX 2 host needs a JSON body", mode)
		}
		return call{method: http.MethodPost, path: "api/v3/" + mode, body: bytes.Clone(body)}, nil
	case "power":
		c, err := wrapped(mode, body, "power", kBool)
		if err != nil {
			return call{}, err
		}
		c.path = "api/v3/basics"
		return c, nil
	case "switch":
		c, err := switch3(body)
		if err != nil {
			return call{}, err
		}
		var sw struct{ Name string }
		json.Unmarshal(c.body, &sw)
		return basics(map[string]any{"switchTo": sw.Name})
	case "nextapp":
		return basics(map[string]any{"app": "next"})
	case "previousapp":
		return basics(map[string]any{"app": "back"})
	case "sound":
		if n, ok := wholeNumber(body); ok && n >= 0 && n <= 9999 {
			return basics(map[string]any{"soundfile": n})
		}
		return call{}, unsupported("sound: the AWTRIX 2 host plays MP3s by number only (mode=sound with body 101)")
	case "reorder":
		var names []string
		if json.Unmarshal(body, &names) != nil || len(names) == 0 {
			return call{}, badRequest(`reorder: body must be the apps' names in order, ["Time","Date",...]`)
		}
		return basics(map[string]any{"appList": names})
	case "apps":
		if len(body) == 0 {
			return basics(map[string]any{"get": "installedApps"})
		}
	case "loop":
		return basics(map[string]any{"get": "appList"})
	}
	return call{}, unsupported("%s: the AWTRIX 2 host has no equivalent (it takes draw, basics, app, settings, notify, customapp, temporaryapp, power, switch, nextapp, previousapp, sound by number, reorder, and the reads apps, loop and settings)", mode)
}

// object decodes a JSON object into its members.
func object(mode string, body []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if len(body) == 0 {
		return nil, badRequest("%s: needs a JSON object as its body", mode)
	}
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, badRequest("%s: body must be a JSON object", mode)
	}
	return m, nil
}

func nonEmptyString(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	if s == "" || isNull(raw) {
		return "", errBadRequest
	}
	return s, nil
}

// isNull reports whether raw is JSON null, which json.Unmarshal accepts
// silently for any type.
func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// truncate shortens a caller-supplied string before it goes into a reply.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
