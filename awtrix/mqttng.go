package awtrix

import (
	"bytes"
	"encoding/json"

	"github.com/pixelrelay/relay/wire"
)

// AWTRIX NG over MQTT (Blueforcer/awtrix-ng, docs/reference/mqtt.md,
// src/core/api/ApiRouter.cpp routeMqtt). NG is not AWTRIX 3: its keys are
// its own (camelCase, durations in ms), and its MQTT payloads are its HTTP
// bodies, so a message's body passes unchanged (trimmed of white space).
// The shapers only check the outer form NG wants (an object, nothing) and
// wrap the modes' bare-value shorthands (switch "Time", power true, sound
// "alarm", rtttl text) in the object NG reads; NG checks the rest and
// answers on <topic>/result. A mode not here has no MQTT topic on NG:
// draw, basics, app, customapp and temporaryapp (AWTRIX 2 bodies), loop
// and apps (NG has no such state or command), r2d2, erase (NG's factory
// reset is HTTP only) and doupdate.
var routesNG = map[string]routeNG{
	"notify":        {topic: "cmd/notify", body: objectNG},
	"dismiss":       {topic: "cmd/notify/dismiss", body: noBodyNG},
	"custom":        {topic: "cmd/apps/pushed/", body: pushedNG}, // + the name (planNG)
	"switch":        {topic: "cmd/apps/switch", body: switchNG},
	"nextapp":       {topic: "cmd/apps/next", body: noBodyNG},
	"previousapp":   {topic: "cmd/apps/previous", body: noBodyNG},
	"reorder":       {topic: "cmd/apps/order", body: objectNG, disruptive: true},
	"settings":      {topic: "cmd/settings", body: objectNG, disruptive: true, read: "state/settings"},
	"resetSettings": {topic: "cmd/settings/reset", body: noBodyNG, disruptive: true},
	"power":         {topic: "cmd/display", body: powerNG},
	"moodlight":     {topic: "cmd/display/moodlight", body: offOrObjectNG},
	"indicator1":    {topic: "cmd/indicators/1", body: offOrObjectNG},
	"indicator2":    {topic: "cmd/indicators/2", body: offOrObjectNG},
	"indicator3":    {topic: "cmd/indicators/3", body: offOrObjectNG},
	"sound":         {topic: "cmd/audio/play", body: soundNG},
	"rtttl":         {topic: "cmd/audio/play", body: rtttlNG},
	"sleep":         {topic: "cmd/device/sleep", body: objectNG, disruptive: true},
	"reboot":        {topic: "cmd/device/reboot", body: noBodyNG, disruptive: true},
	"stats":         {state: "state/device", body: readNG},
	"screen":        {topic: "cmd/screen/get", state: "state/screen", body: readNG},
	"effects":       {state: "state/capabilities", field: "effects", body: readNG},
	"transitions":   {state: "state/capabilities", field: "transitions", body: readNG},
}

// routeNG is one mode on AWTRIX NG.
type routeNG struct {
	topic, state, field string // as in Command
	// body checks the (trimmed) body and returns the payload, owned.
	body       func(mode string, body []byte) ([]byte, error)
	disruptive bool
	// read, if set, is the state topic that answers the mode instead
	// when the body is empty (settings: a write with one, a read without).
	read string
}

// planNG maps a message to AWTRIX NG's topic.
func planNG(m wire.Message) (Command, error) {
	mode, body := m.Mode, bytes.TrimSpace(m.Body)
	r, ok := routesNG[mode]
	if !ok {
		return Command{}, unsupported("mode %q has no MQTT topic on %s", mode, DialectNG)
	}
	if r.read != "" && len(body) == 0 {
		return Command{State: r.read}, nil
	}
	topic := r.topic
	if mode == "custom" {
		name := queryName(m.Query)
		if !validNameNG(name) {
			return Command{}, badRequest("custom: AWTRIX NG's app names must match [A-Za-z0-9_-]{1,32} (mode=custom&name=weather)")
		}
		topic += name
	}
	payload, err := r.body(mode, body)
	if err != nil {
		return Command{}, err
	}
	return Command{Topic: topic, Payload: payload, State: r.state, Field: r.field, Disruptive: r.disruptive}, nil
}

// validNameNG is NG's rule for a pushed app's name: [A-Za-z0-9_-]{1,32}.
func validNameNG(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// noBodyNG is a command whose payload NG ignores: nothing is sent.
func noBodyNG(mode string, body []byte) ([]byte, error) {
	if len(body) > 0 && string(body) != "{}" {
		return nil, badRequest("%s takes no body", mode)
	}
	return nil, nil
}

// readNG is a read: the message has no body.
func readNG(mode string, body []byte) ([]byte, error) {
	if len(body) > 0 {
		return nil, badRequest("%s is a read: no body (GET /cloud?mode=%s)", mode, mode)
	}
	return nil, nil
}

// objectNG passes a JSON object.
func objectNG(mode string, body []byte) ([]byte, error) {
	if _, err := object(mode, body); err != nil {
		return nil, err
	}
	return bytes.Clone(body), nil
}

// offOrObjectNG passes a JSON object, or nothing (off: NG's empty payload
// is the HTTP DELETE).
func offOrObjectNG(mode string, body []byte) ([]byte, error) {
	if len(body) == 0 {
		return nil, nil
	}
	return objectNG(mode, body)
}

// pushedNG is a pushed app: an object, an array of objects (one app each),
// or nothing or {} (delete).
func pushedNG(mode string, body []byte) ([]byte, error) {
	if len(body) == 0 {
		return nil, nil
	}
	var pages []map[string]json.RawMessage
	if body[0] == '[' && (json.Unmarshal(body, &pages) != nil || len(pages) == 0 || slicesContainsNil(pages)) {
		return nil, badRequest("custom: body must be an object, a non-empty array of objects (one app each), or empty (delete)")
	}
	if body[0] == '[' {
		return bytes.Clone(body), nil
	}
	return objectNG(mode, body)
}

// switchNG passes {"name": NAME, ...}; the name alone (a JSON string)
// becomes {"name": NAME}, since NG would read the quotes as the name's.
func switchNG(mode string, body []byte) ([]byte, error) {
	var name string
	if json.Unmarshal(body, &name) == nil && name != "" {
		return marshal(map[string]json.RawMessage{"name": quote(name)}), nil
	}
	obj, err := object(mode, body)
	if err == nil {
		_, err = nonEmptyString(obj["name"])
	}
	if err != nil {
		return nil, badRequest(`switch: body must be {"name":"Time"} (and "fast": true to skip the transition), or the name alone`)
	}
	return bytes.Clone(body), nil
}

// powerNG passes NG's display object ({"power": bool, "overlay": ...});
// true or false alone becomes {"power": ...}.
func powerNG(mode string, body []byte) ([]byte, error) {
	if isBool(body) {
		return marshal(map[string]json.RawMessage{"power": body}), nil
	}
	if _, err := object(mode, body); err != nil {
		return nil, badRequest(`power: body must be {"power":true} (AWTRIX NG's display object) or true/false`)
	}
	return bytes.Clone(body), nil
}

// soundNG passes NG's play object (exactly one of "sound", "mp3",
// "melody", "track", "rtttl", ...); a name alone becomes {"sound": NAME}.
func soundNG(mode string, body []byte) ([]byte, error) {
	var name string
	if json.Unmarshal(body, &name) == nil && name != "" {
		return marshal(map[string]json.RawMessage{"sound": quote(name)}), nil
	}
	if _, err := object(mode, body); err != nil {
		return nil, badRequest(`sound: body must be {"sound":"alarm"} (or AWTRIX NG's "mp3", "melody", "track", ...) or the name alone`)
	}
	return bytes.Clone(body), nil
}

// rtttlNG plays an RTTTL string, given as for AWTRIX 3 (plainText), as
// NG's {"rtttl": STRING}.
func rtttlNG(mode string, body []byte) ([]byte, error) {
	c, err := plainText(mode, body)
	if err != nil {
		return nil, err
	}
	return marshal(map[string]json.RawMessage{"rtttl": quote(string(c.body))}), nil
}
