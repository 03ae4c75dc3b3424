package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/pixelrelay/relay/httperr"
	"net/url"
	"strconv"

	"github.com/valyala/fasthttp"
)

// methodOf names the request's method without allocating for the two
// the frontend serves.
func methodOf(m []byte) string {
	switch string(m) {
	case fasthttp.MethodPost:
		return fasthttp.MethodPost
	case fasthttp.MethodGet:
		return fasthttp.MethodGet
	}
	return string(m)
}

// maxNameLen bounds a custom app's name: AWTRIX 3 uses it in MQTT topics
// and file names.
const maxNameLen = 64

// nameQuery checks a custom app's name and encodes it as the MESSAGE's
// query.
func nameQuery(name []byte) (string, error) {
	if len(name) == 0 || len(name) > maxNameLen {
		return "", httperr.Detailed(ErrParam, fmt.Sprintf("name must be 1 to %d characters", maxNameLen))
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "", httperr.Detailed(ErrParam, "name may hold only A-Z a-z 0-9 _ - . (AWTRIX 3 uses it in MQTT topics and file names)")
		}
	}
	return "name=" + string(name), nil
}

// toJSON is the body a device gets: empty (a read, or a command without
// arguments) or JSON. JSON passes as it is, whatever the Content-Type says
// (curl -d sends JSON as a form). Callers that cannot build JSON are met
// halfway: with Content-Type text/plain, notify's body is the text to show
// and rtttl's and r2d2's the string to play; a form body is notify's
// fields. Anything else gets 400, with a hint for IFTTT, whose
// ingredients break JSON when they hold a quote or a line break.
func toJSON(mode string, contentType, body []byte, maxBody int) ([]byte, error) {
	if len(body) == 0 {
		return nil, nil
	}
	text := isMedia(contentType, "text/plain")
	switch {
	case mode == "notify" && text && !isObject(body):
		return fit(json.Marshal(struct {
			Text string `json:"text"`
		}{string(body)}))(maxBody)
	case json.Valid(body):
		return body, nil
	case (mode == "rtttl" || mode == "r2d2") && text:
		return fit(json.Marshal(string(body)))(maxBody)
	case mode == "notify" && isMedia(contentType, "application/x-www-form-urlencoded"):
		return formNotify(body, maxBody)
	case mode == "notify":
		return nil, httperr.Detailed(ErrBadJSON, `body is not valid JSON (an IFTTT ingredient holding a " or a line break breaks it): `+
			`send the text alone with Content-Type: text/plain, or JSON`)
	case mode == "rtttl" || mode == "r2d2":
		return nil, httperr.Detailed(ErrBadJSON, "body is not valid JSON: send the string as a JSON string, or alone with Content-Type: text/plain")
	}
	return nil, ErrBadJSON
}

// isMedia reports whether the Content-Type ct is the media type mt (lower
// case), parameters aside. It does not allocate: it runs on every webhook.
func isMedia(ct []byte, mt string) bool {
	ct = bytes.TrimLeft(ct, " ")
	if len(ct) < len(mt) || !bytes.EqualFold(ct[:len(mt)], []byte(mt)) {
		return false
	}
	rest := bytes.TrimLeft(ct[len(mt):], " ")
	return len(rest) == 0 || rest[0] == ';'
}

// isObject reports whether b is a JSON object.
func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

// fit checks a converted body against the size limit: escaping can make
// it longer than what was posted.
func fit(b []byte, err error) func(maxBody int) ([]byte, error) {
	return func(maxBody int) ([]byte, error) {
		if err != nil {
			return nil, ErrBadJSON
		}
		if len(b) > maxBody {
			return nil, httperr.TooLarge
		}
		return b, nil
	}
}

// formNotify turns notify's form fields into its JSON: the strings text,
// icon, color and sound, the integers duration and repeat, the booleans
// rainbow and hold.
func formNotify(body []byte, maxBody int) ([]byte, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, httperr.Detailed(ErrBadForm, "form body does not parse; send the text alone with Content-Type: text/plain, or JSON")
	}
	if _, ok := vals["text"]; !ok {
		return nil, httperr.Detailed(ErrBadForm, "form body has no text field")
	}
	out := make(map[string]any, len(vals))
	for k, v := range vals {
		if len(v) != 1 {
			return nil, httperr.Detailed(ErrBadForm, fmt.Sprintf("form field %.32q given %d times", k, len(v)))
		}
		switch k {
		case "text", "icon", "color", "sound":
			out[k] = v[0]
		case "duration", "repeat":
			n, err := strconv.Atoi(v[0])
			if err != nil {
				return nil, httperr.Detailed(ErrBadForm, fmt.Sprintf("form field %s must be an integer", k))
			}
			out[k] = n
		case "rainbow", "hold":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return nil, httperr.Detailed(ErrBadForm, fmt.Sprintf("form field %s must be true or false", k))
			}
			out[k] = b
		default:
			return nil, httperr.Detailed(ErrBadForm, fmt.Sprintf("form field %.32q is not one notify takes: text, icon, color, duration, repeat, rainbow, hold, sound", k))
		}
	}
	return fit(json.Marshal(out))(maxBody)
}
