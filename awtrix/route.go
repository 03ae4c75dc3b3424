package awtrix

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
)

// route maps a relay message to the call the clock's API wants. It checks
// the body before anything is sent: a message the clock cannot take never
// leaves the agent.
//
// Every call owns its body: pass-through bodies are copied, because net/http
// may still read a request body after Client.Do has returned (see
// http.RoundTripper), and the caller's body is only valid until
// HandleMessage returns.
func (f *Forwarder) route(mode string, body []byte) (call, error) {
	switch mode {
	case "draw", "basics", "app", "settings", "notify", "customapp", "temporaryapp":
	default:
		return call{}, badRequest("unknown mode %q", truncate(mode, 32))
	}
	if !json.Valid(body) {
		return call{}, badRequest("body is not valid JSON")
	}
	if f.api == 2 {
		return call{path: "api/v3/" + mode, body: bytes.Clone(body)}, nil
	}
	switch mode {
	case "notify", "settings":
		return call{path: "api/" + mode, body: bytes.Clone(body)}, nil
	case "app", "customapp", "temporaryapp":
		return customApp(mode, body)
	case "basics":
		return basics(body)
	default: // draw
		b, err := translateDraw(body)
		if err != nil {
			return call{}, err
		}
		return call{path: "api/notify", body: b}, nil
	}
}

// object decodes a JSON object into its members.
func object(mode string, body []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, badRequest("%s: body must be a JSON object", mode)
	}
	return m, nil
}

// customApp maps app, customapp and temporaryapp to AWTRIX 3's custom apps,
// which are named in the query string. AWTRIX 2's {"remove":"X"} becomes
// AWTRIX 3's way of deleting an app: an empty body.
func customApp(mode string, body []byte) (call, error) {
	m, err := object(mode, body)
	if err != nil {
		return call{}, err
	}
	if raw, ok := m["name"]; ok {
		name, err := nonEmptyString(raw)
		if err != nil {
			return call{}, badRequest("%s: \"name\" must be a non-empty string", mode)
		}
		return call{path: "api/custom", query: url.Values{"name": {name}}, body: bytes.Clone(body)}, nil
	}
	if raw, ok := m["remove"]; ok {
		name, err := nonEmptyString(raw)
		if err != nil {
			return call{}, badRequest("%s: \"remove\" must be a non-empty string", mode)
		}
		return call{path: "api/custom", query: url.Values{"name": {name}}}, nil
	}
	return call{}, badRequest("%s: missing \"name\": AWTRIX 3 custom apps are named", mode)
}

// basics maps AWTRIX 2's basic controls to AWTRIX 3's endpoints. AWTRIX 3
// has no timer, stopwatch, get, showAnimation, soundfile, appList, enable or
// disable over HTTP in this form, and no pause/hold of the app loop.
func basics(body []byte) (call, error) {
	m, err := object("basics", body)
	if err != nil {
		return call{}, err
	}
	n := 0
	for _, k := range [...]string{"power", "switchTo", "app"} {
		if _, ok := m[k]; ok {
			n++
		}
	}
	if n > 1 {
		return call{}, badRequest("basics: one of \"power\", \"switchTo\", \"app\" per message")
	}
	if raw, ok := m["power"]; ok {
		var on bool
		if err := json.Unmarshal(raw, &on); err != nil || isNull(raw) {
			return call{}, badRequest("basics: \"power\" must be true or false")
		}
		b, _ := json.Marshal(struct {
			Power bool `json:"power"`
		}{on})
		return call{path: "api/power", body: b}, nil
	}
	if raw, ok := m["switchTo"]; ok {
		name, err := nonEmptyString(raw)
		if err != nil {
			return call{}, badRequest("basics: \"switchTo\" must be a non-empty string")
		}
		b, _ := json.Marshal(struct {
			Name string `json:"name"`
		}{name})
		return call{path: "api/switch", body: b}, nil
	}
	if raw, ok := m["app"]; ok {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return call{}, badRequest("basics: \"app\" must be a string")
		}
		switch strings.ToLower(s) {
		case "next":
			return call{path: "api/nextapp"}, nil
		case "previous", "prev", "back": // AWTRIX 2 documents "back"
			return call{path: "api/previousapp"}, nil
		}
		return call{}, unsupported("basics: \"app\": %q has no AWTRIX 3 equivalent (next, previous)", truncate(s, 32))
	}
	return call{}, unsupported("basics: AWTRIX 3 supports only \"power\", \"switchTo\" and \"app\" (next, previous)")
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
