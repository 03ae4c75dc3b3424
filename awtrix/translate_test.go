package awtrix

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/pixelrelay/relay/wire"
)

// checkOutput fails unless out is what the AWTRIX 3 firmware takes for
// mode: one JSON object (or, for custom, an array of them) within the
// parser's size, with no key AWTRIX 2 alone knows, and every AWTRIX 3 key
// of the type the firmware reads it as.
func checkOutput(t *testing.T, mode string, out []byte) {
	t.Helper()
	limit := maxNotify3
	if mode != "notify" && mode != "draw" {
		limit = maxCustom3
	}
	if len(out) > limit {
		t.Fatalf("%d bytes passes the clock's %d: %.80s", len(out), limit, out)
	}
	var objs []map[string]json.RawMessage
	if err := json.Unmarshal(out, &objs); err != nil {
		var one map[string]json.RawMessage
		if err := json.Unmarshal(out, &one); err != nil || one == nil {
			t.Fatalf("output is not a JSON object: %v: %s", err, out)
		}
		objs = []map[string]json.RawMessage{one}
	}
	for _, o := range objs {
		for k, v := range o {
			if slices.Contains(only2, k) || unsupported2[k] != "" {
				t.Fatalf("AWTRIX 2's %q reached the output: %s", k, out)
			}
			if err := check(mode, k, v); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
	}
}

// FuzzTranslate feeds arbitrary bodies to every mode that translates AWTRIX
// 2 bodies: nothing may panic, every failure is a refusal for the caller,
// and every success is a body the firmware takes (checkOutput).
func FuzzTranslate(f *testing.F) {
	for _, b := range []string{
		`{"force":true,"text":"Awesome","icon":1,"color":[0,255,255],"count":2}`,
		`{"name":"Test","force":true,"icon":6,"moveIcon":true,"repeat":2,"soundfile":1,"text":"Totally Awesome","color":[0,255,0]}`,
		`{"multiColorText":[{"text":"Totally ","color":[0,255,0]},{"text":"Awesome","color":[255,0,0]}],"scrollSpeed":40}`,
		`{"name":"TestApp","lifetime":5,"icon":6,"text":"Totally Awesome","color":[60,255,0]}`,
		`{"ID":4,"text":"Google dropped","progress":20,"progressColor":[1,2,3],"barchart":[1,2]}`,
		`{"text":"Hi","rainbow":true,"duration":10,"effect":"Fade","hold":true}`,
		`[{"text":"1"},{"text":"2","icon":"x"}]`,
		`{"remove":"TestApp"}`,
		`{"text":"x","duration":1e400}`,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The reads a temporary app's lifetime takes are not fuzzed: an
		// unreachable clock stands in, and the translation stops there.
		fw, err := New("http://127.0.0.1:1", Options{API: API3})
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []string{"notify", "app", "customapp", "custom", "draw"} {
			var calls []call
			var err error
			if mode == "custom" {
				var c call
				c, err = custom3(mode, "x", body)
				calls = []call{c}
			} else {
				calls, err = fw.route3(t.Context(), messageFor(mode, body))
			}
			if err != nil {
				var re *reqError
				if !errors.As(err, &re) {
					t.Fatalf("%s: not a refusal for the caller: %v", mode, err)
				}
				continue
			}
			if b := calls[len(calls)-1].body; b != nil {
				checkOutput(t, mode, b)
			}
		}
	})
}

func messageFor(mode string, body []byte) wire.Message { return wire.Message{Mode: mode, Body: body} }
