// Package fakeclock runs clocks for tests on loopback: an AWTRIX 3 clock
// that answers as the firmware's HTTP API does (Blueforcer/awtrix3,
// src/ServerManager.cpp: 200 text/plain "OK" on its POST routes, 500
// "ErrorParsingJson" on bad JSON, JSON on its GET routes, 404 for any
// other method or path), and an AWTRIX 2 host (the Java host's
// /api/v3/ENDPOINT, POST with JSON). Each records every request it gets.
package fakeclock

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Request is one request as a clock got it.
type Request struct {
	Method, Path, RawQuery, ContentType, Auth, Body string
}

// Clock is a fake clock on 127.0.0.1.
type Clock struct {
	URL string // base URL, http://127.0.0.1:PORT

	mu   sync.Mutex
	reqs []Request
	apps []string // AWTRIX 3's loop, in order
	set  map[string]any
}

// Requests returns what the clock got so far.
func (c *Clock) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reqs)
}

// Reset forgets the requests.
func (c *Clock) Reset() {
	c.mu.Lock()
	c.reqs = nil
	c.mu.Unlock()
}

// Apps is AWTRIX 3's app loop now.
func (c *Clock) Apps() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.apps)
}

func (c *Clock) record(r *http.Request) string {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.reqs = append(c.reqs, Request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(b)})
	c.mu.Unlock()
	return string(b)
}

// Stats is what the fake AWTRIX 3 answers GET /api/stats with (the
// firmware's DisplayManager::getStats keys).
const Stats = `{"bat":88,"bat_raw":655,"type":0,"lux":120,"ldr_raw":301,"ram":150000,"bri":120,"temp":21.5,"hum":40,` +
	`"uptime":3600,"wifi_signal":-60,"messages":3,"version":"0.98","indicator1":false,"indicator2":false,"indicator3":false,` +
	`"app":"Time","uid":"awtrix_fake","matrix":true,"ip_address":"127.0.0.1"}`

// AWTRIX3 starts an AWTRIX 3 clock with the five native apps in its loop
// and ATIME 7 s, until the test ends.
func AWTRIX3(tb testing.TB) *Clock {
	tb.Helper()
	c := &Clock{apps: []string{"Time", "Date", "Temperature", "Humidity", "Battery"}, set: map[string]any{"ATIME": 7, "BRI": 120, "TEFF": 1}}
	ok := func(w http.ResponseWriter) { text(w, 200, "OK") }
	parses := func(body string) bool { return json.Valid([]byte(body)) }
	post := map[string]func(w http.ResponseWriter, r *http.Request, body string){
		"/api/notify": func(w http.ResponseWriter, _ *http.Request, body string) {
			if !parses(body) {
				text(w, 500, "ErrorParsingJson")
				return
			}
			ok(w)
		},
		"/api/custom": func(w http.ResponseWriter, r *http.Request, body string) {
			name := r.URL.Query().Get("name")
			if body == "" || body == "{}" {
				c.mu.Lock()
				c.apps = slices.DeleteFunc(c.apps, func(a string) bool { return strings.HasPrefix(a, name) })
				c.mu.Unlock()
				ok(w)
				return
			}
			if !parses(body) {
				text(w, 500, "ErrorParsingJson")
				return
			}
			c.mu.Lock()
			if !slices.Contains(c.apps, name) {
				c.apps = append(c.apps, name)
			}
			c.mu.Unlock()
			ok(w)
		},
		"/api/settings": func(w http.ResponseWriter, _ *http.Request, body string) {
			var s map[string]any
			if json.Unmarshal([]byte(body), &s) == nil {
				c.mu.Lock()
				maps.Copy(c.set, s)
				c.mu.Unlock()
			}
			ok(w)
		},
		"/api/switch": func(w http.ResponseWriter, _ *http.Request, body string) {
			var s struct{ Name string }
			c.mu.Lock()
			known := json.Unmarshal([]byte(body), &s) == nil && slices.Contains(c.apps, s.Name)
			c.mu.Unlock()
			if !known {
				text(w, 500, "FAILED")
				return
			}
			ok(w)
		},
		"/api/sound": func(w http.ResponseWriter, _ *http.Request, body string) {
			if !strings.Contains(body, `"sound"`) {
				text(w, 404, "FileNotFound")
				return
			}
			ok(w)
		},
	}
	for _, p := range []string{"indicator1", "indicator2", "indicator3", "moodlight"} {
		post["/api/"+p] = func(w http.ResponseWriter, _ *http.Request, body string) {
			if body != "" && body != "{}" && !parses(body) {
				text(w, 500, "ErrorParsingJson")
				return
			}
			ok(w)
		}
	}
	for _, p := range []string{"power", "sleep", "rtttl", "r2d2", "nextapp", "previousapp", "notify/dismiss", "apps", "reorder", "reboot", "erase", "resetSettings", "doupdate"} {
		post["/api/"+p] = func(w http.ResponseWriter, _ *http.Request, _ string) { ok(w) }
	}
	get := map[string]func() any{
		"/api/stats":       func() any { return json.RawMessage(Stats) },
		"/api/effects":     func() any { return []string{"Fade", "MovingLine", "BrickBreaker", "PingPong", "Radar"} },
		"/api/transitions": func() any { return []string{"Random", "Slide", "Dim", "Zoom", "Rotate"} },
		"/api/settings":    func() any { return maps.Clone(c.set) },
		"/api/loop": func() any {
			m := map[string]int{}
			for i, a := range c.apps {
				m[a] = i
			}
			return m
		},
		"/api/apps": func() any {
			var out []map[string]string
			for _, a := range c.apps {
				out = append(out, map[string]string{"name": a})
			}
			return out
		},
		"/api/screen": func() any {
			px := make([]int, 256)
			for i := range px {
				px[i] = i * 0x010101 % 0x1000000
			}
			return px
		},
	}
	c.start(tb, func(w http.ResponseWriter, r *http.Request, body string) {
		// The ESP web server routes by path and method; anything else is 404.
		if r.Method == http.MethodPost || r.URL.Path == "/api/nextapp" || r.URL.Path == "/api/reboot" || r.URL.Path == "/api/notify/dismiss" {
			if h, found := post[r.URL.Path]; found {
				h(w, r, body)
				return
			}
		}
		if h, found := get[r.URL.Path]; found && r.Method == http.MethodGet {
			c.mu.Lock()
			v := h()
			c.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(v)
			return
		}
		text(w, 404, "Not found")
	})
	return c
}

// AWTRIX2 starts an AWTRIX 2 host until the test ends: POST
// /api/v3/{draw,basics,app,settings,notify,customapp,temporaryapp} with a
// JSON body, answered {"success":true}; basics {"get":...} is answered
// with some JSON.
func AWTRIX2(tb testing.TB) *Clock {
	tb.Helper()
	c := &Clock{}
	endpoints := []string{"draw", "basics", "app", "settings", "notify", "customapp", "temporaryapp"}
	c.start(tb, func(w http.ResponseWriter, r *http.Request, body string) {
		ep, found := strings.CutPrefix(r.URL.Path, "/api/v3/")
		if !found || r.Method != http.MethodPost || !slices.Contains(endpoints, ep) {
			text(w, 404, "Not found")
			return
		}
		var v map[string]any
		if json.Unmarshal([]byte(body), &v) != nil {
			text(w, 400, "Bad JSON")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if get, ok := v["get"].(string); ok && ep == "basics" {
			json.NewEncoder(w).Encode(map[string]any{get: "fake " + get})
			return
		}
		io.WriteString(w, `{"success":true}`)
	})
	return c
}

func (c *Clock) start(tb testing.TB, h func(w http.ResponseWriter, r *http.Request, body string)) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r, c.record(r))
	}))
	tb.Cleanup(srv.Close)
	c.URL = srv.URL
}

func text(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	io.WriteString(w, s)
}

// SameJSON reports whether two JSON texts hold the same value (key order
// and spacing aside); texts that are not JSON compare as they are.
func SameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
