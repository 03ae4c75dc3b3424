package awtrix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Translating AWTRIX 2 notifications and apps to AWTRIX 3.
//
// AWTRIX 2 (the Java host's /api/v3/notify, app, customapp, temporaryapp;
// AWTRIX2.0-Docs en-en/api.md) and AWTRIX 3 (docs/api.md, "JSON
// Properties") describe a notification or an app with mostly the same
// keys. translate keeps what both mean alike, renames and converts what
// AWTRIX 3 spells or counts differently, and refuses, naming the key, what
// AWTRIX 3 cannot do, so that nothing is dropped silently. docs/API.md has
// the table; every row is a case in translate_test.go.
//
// A body is taken as AWTRIX 2's when it holds a key only AWTRIX 2 has
// (force, moveIcon, soundfile, ...): that decides the one key both have
// with different units, scrollSpeed (AWTRIX 2: ms per step, lower is
// faster; AWTRIX 3: percent of the default speed). A body with only shared
// keys is taken as AWTRIX 3's.

// kind is the JSON type AWTRIX 3 reads a key as; translate refuses a value
// of another type rather than let the clock read it as 0 or "".
type kind int

const (
	kString kind = iota
	kInt         // a JSON number without a fraction
	kBool
	kArray
	kObject
	kColor // "#RRGGBB" or [r,g,b]
	kText  // a string, or an array of {"t","c"} fragments
)

// keys3 are AWTRIX 3's notification and custom app keys and their types.
// Keys outside it pass unchanged: the firmware ignores what it does not
// know, and newer firmware may know more.
var keys3 = map[string]kind{
	"text": kText, "textCase": kInt, "topText": kBool, "textOffset": kInt, "center": kBool,
	"color": kColor, "gradient": kArray, "blinkText": kInt, "fadeText": kInt, "background": kColor,
	"rainbow": kBool, "icon": kString, "pushIcon": kInt, "repeat": kInt, "duration": kInt,
	"hold": kBool, "sound": kString, "rtttl": kString, "loopSound": kBool, "bar": kArray,
	"line": kArray, "autoscale": kBool, "barBC": kColor, "progress": kInt, "progressC": kColor,
	"progressBC": kColor, "pos": kInt, "draw": kArray, "lifetime": kInt, "lifetimeMode": kInt,
	"stack": kBool, "wakeup": kBool, "noScroll": kBool, "clients": kArray, "scrollSpeed": kInt,
	"effect": kString, "effectSettings": kObject, "save": kBool, "overlay": kString,
}

// renamed2 are AWTRIX 2 keys whose value AWTRIX 3 takes unchanged under
// another name.
var renamed2 = map[string]string{
	"progressColor":      "progressC",
	"progressBackground": "progressBC",
	"barchart":           "bar",
	"linechart":          "line",
	// The first AWTRIX 2 docs (and the cloud's IFTTT example) call
	// repeat count.
	"count": "repeat",
}

// unsupported2 are AWTRIX 2 keys AWTRIX 3 has no equivalent for, and why.
var unsupported2 = map[string]string{
	"fallingText": "AWTRIX 3 only scrolls text",
	"icon2":       "AWTRIX 3 shows one icon",
	"icon3":       "AWTRIX 3 shows one icon",
	"icon4":       "AWTRIX 3 shows one icon",
	"yeelight":    "AWTRIX 3 drives no Yeelight",
}

// only2 are the keys that mark a body as AWTRIX 2's.
var only2 = []string{"force", "moveIcon", "repeatIcon", "soundfile", "multiColorText",
	"progressColor", "progressBackground", "barchart", "linechart", "count",
	"fallingText", "icon2", "icon3", "icon4", "yeelight"}

// target is where a translated object goes.
type target int

const (
	toNotify target = iota // /api/notify
	toApp                  // /api/custom
)

// translate turns one notification or app object into AWTRIX 3's. mode
// names it in errors. The caller has taken out what it handles itself
// (an app's name, remove, ID, lifetime of a temporary app).
func translate(mode string, m map[string]json.RawMessage, to target) (map[string]json.RawMessage, error) {
	aw2 := slices.ContainsFunc(only2, func(k string) bool { _, ok := m[k]; return ok })
	out := make(map[string]json.RawMessage, len(m))
	set := func(k string, v json.RawMessage, from string) error {
		if _, dup := out[k]; dup {
			return badRequest("%s: %q and %q both give AWTRIX 3's %q", mode, from, k, k)
		}
		out[k] = v
		return nil
	}
	// Sorted, so that the first error named is the same every time.
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		var err error
		switch {
		case unsupported2[k] != "":
			return nil, unsupported("%s: %q has no AWTRIX 3 equivalent (%s)", mode, k, unsupported2[k])
		case renamed2[k] != "":
			if check(mode, renamed2[k], v) != nil {
				return nil, badRequest("%s: %q must be %s", mode, k, kindNames[keys3[renamed2[k]]])
			}
			err = set(renamed2[k], v, k)
		case k == "force":
			var force bool
			if json.Unmarshal(v, &force) != nil || isNull(v) {
				return nil, badRequest("%s: \"force\" must be true or false", mode)
			}
			switch {
			case !force: // AWTRIX 3's default: queued notifications, apps in the loop
			case to == toNotify:
				// Shown at once, not after the ones before it.
				err = set("stack", json.RawMessage("false"), k)
			default:
				return nil, unsupported("%s: \"force\": true has no AWTRIX 3 equivalent for apps (send mode=switch with the app's name to show it now)", mode)
			}
		case k == "moveIcon":
			var move bool
			if json.Unmarshal(v, &move) != nil || isNull(v) {
				return nil, badRequest("%s: \"moveIcon\" must be true or false", mode)
			}
			push := "0"
			if move {
				push = "1" // moves away with the text
				var again bool
				if r, ok := m["repeatIcon"]; ok && json.Unmarshal(r, &again) == nil && again {
					push = "2" // and comes back when the text scrolls again
				}
			}
			err = set("pushIcon", json.RawMessage(push), k)
		case k == "repeatIcon":
			// Folded into pushIcon with moveIcon; without it, AWTRIX 2 ignores it too.
			var b bool
			if json.Unmarshal(v, &b) != nil || isNull(v) {
				return nil, badRequest("%s: \"repeatIcon\" must be true or false", mode)
			}
		case k == "soundfile":
			if to != toNotify {
				return nil, unsupported("%s: \"soundfile\" has no AWTRIX 3 equivalent for apps (AWTRIX 3 plays sounds with notifications and mode=sound)", mode)
			}
			n, ok := wholeNumber(v)
			if !ok || n < 0 || n > 9999 {
				return nil, badRequest("%s: \"soundfile\" must be the MP3's number, 0 to 9999", mode)
			}
			err = set("sound", quote(fmt.Sprintf("%04d", n)), k)
		case k == "multiColorText":
			var frags []struct {
				Text  *string         `json:"text"`
				Color json.RawMessage `json:"color"`
			}
			if json.Unmarshal(v, &frags) != nil || frags == nil {
				return nil, badRequest("%s: \"multiColorText\" must be an array of {\"text\",\"color\"}", mode)
			}
			out3 := make([]map[string]string, len(frags))
			for i, f := range frags {
				c, ok := hexColor(f.Color)
				if f.Text == nil || !ok {
					return nil, badRequest("%s: \"multiColorText\"[%d] must be {\"text\": string, \"color\": [r,g,b]}", mode, i)
				}
				out3[i] = map[string]string{"t": *f.Text, "c": strings.TrimPrefix(c, "#")}
			}
			b, _ := json.Marshal(out3)
			err = set("text", b, k)
		case k == "scrollSpeed" && aw2:
			ms, ok := wholeNumber(v)
			if !ok || ms <= 0 || ms > 10000 {
				return nil, badRequest("%s: AWTRIX 2's \"scrollSpeed\" must be milliseconds per step, 1 to 10000", mode)
			}
			// AWTRIX 2 steps every ms (65 by default); AWTRIX 3 takes a
			// percent of its default speed.
			err = set("scrollSpeed", json.RawMessage(strconv.Itoa(max(1, int(math.Round(6500/float64(ms)))))), k)
		case k == "icon":
			if n, ok := wholeNumber(v); ok {
				// AWTRIX 2 names icons by number; AWTRIX 3 by file name.
				err = set("icon", quote(strconv.FormatInt(n, 10)), k)
				break
			}
			err = check(mode, k, v)
			if err == nil {
				err = set(k, v, k)
			}
		case k == "remove" && to == toNotify:
			return nil, badRequest("%s: AWTRIX 3 cannot remove a queued notification (mode=dismiss clears the one on screen)", mode)
		case k == "name" && to == toNotify:
			// AWTRIX 2 names a notification only to remove it from the
			// queue, which AWTRIX 3 cannot: the name shows nothing.
		default:
			if err = check(mode, k, v); err == nil {
				err = set(k, v, k)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// check refuses a value of a type AWTRIX 3 does not read key as.
func check(mode, key string, v json.RawMessage) error {
	want, ok := keys3[key]
	if !ok {
		return nil
	}
	v = bytes.TrimSpace(v)
	var good bool
	switch want {
	case kString:
		good = len(v) > 0 && v[0] == '"'
	case kInt:
		_, good = wholeNumber(v)
	case kBool:
		good = string(v) == "true" || string(v) == "false"
	case kArray:
		good = len(v) > 0 && v[0] == '['
	case kObject:
		good = len(v) > 0 && v[0] == '{'
	case kColor:
		_, good = hexColor(v)
	case kText:
		good = len(v) > 0 && (v[0] == '"' || v[0] == '[')
	}
	if !good {
		return badRequest("%s: %q must be %s", mode, key, kindNames[want])
	}
	return nil
}

var kindNames = map[kind]string{
	kString: "a string", kInt: "an integer", kBool: "true or false", kArray: "an array",
	kObject: "an object", kColor: `"#RRGGBB" or [r,g,b]`, kText: "a string or an array of fragments",
}

// wholeNumber reads v as an integer-valued JSON number.
func wholeNumber(v json.RawMessage) (int64, bool) {
	var f float64
	if json.Unmarshal(v, &f) != nil || isNull(v) || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// hexColor reads a color as AWTRIX 3's "#RRGGBB".
func hexColor(v json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(v, &s) == nil && !isNull(v) {
		return s, isHexColor(s)
	}
	var c []int
	if json.Unmarshal(v, &c) != nil || len(c) != 3 {
		return "", false
	}
	for _, x := range c {
		if x < 0 || x > 255 {
			return "", false
		}
	}
	return fmt.Sprintf("#%02X%02X%02X", c[0], c[1], c[2]), true
}

// quote is s as a JSON string.
func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
