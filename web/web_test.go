package web

import (
	"regexp"
	"strings"
	"testing"
)

func TestAssetKnownPaths(t *testing.T) {
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<canvas id="matrix"`},
		{"/index.html", "text/html; charset=utf-8", `<canvas id="matrix"`},
		{"/app.js", "text/javascript; charset=utf-8", "window.awtrixDevice"},
		{"/device.js", "text/javascript; charset=utf-8", "export class Device"},
		{"/display.js", "text/javascript; charset=utf-8", "export class Display"},
		{"/font.js", "text/javascript; charset=utf-8", "export function textWidth"},
		{"/matrix.js", "text/javascript; charset=utf-8", "export function runDraw"},
		{"/modes.js", "text/javascript; charset=utf-8", "export function handleMessage"},
		{"/wire.js", "text/javascript; charset=utf-8", "export class FrameReader"},
		{"/style.css", "text/css; charset=utf-8", "canvas"},
	} {
		body, ctype, ok := Asset(tc.path)
		if !ok {
			t.Errorf("Asset(%q): not found", tc.path)
			continue
		}
		if ctype != tc.ctype {
			t.Errorf("Asset(%q): Content-Type %q, want %q", tc.path, ctype, tc.ctype)
		}
		if !strings.Contains(string(body), tc.contains) {
			t.Errorf("Asset(%q): body lacks %q", tc.path, tc.contains)
		}
	}
}

func TestAssetUnknownPaths(t *testing.T) {
	for _, p := range []string{
		"", "index.html", "app.js", "/nope", "/static/app.js", "/../web.go", "/./app.js",
		"//app.js", "/app.js/", "/APP.JS", "/app.js?x=1",
		// Beside the page but not part of it: node's tests and package.json.
		"/wire.test.mjs", "/package.json",
	} {
		if body, ctype, ok := Asset(p); ok || body != nil || ctype != "" {
			t.Errorf("Asset(%q) = %d bytes, %q, %v; want nothing", p, len(body), ctype, ok)
		}
	}
}

func TestEveryAssetHasAContentType(t *testing.T) {
	for p, a := range assets {
		if a.contentType == "" {
			t.Errorf("%s: no Content-Type", p)
		}
	}
}

// The page must load as served: every file it names is an asset, and
// nothing comes from elsewhere (no CDN, no external fonts).
func TestPageReferencesResolve(t *testing.T) {
	ref := regexp.MustCompile(`(?:src|href)="([^"]+)"|from '([^']+)'|import\('([^']+)'\)`)
	for p, a := range assets {
		for _, m := range ref.FindAllStringSubmatch(string(a.body), -1) {
			target := m[1] + m[2] + m[3]
			if strings.HasPrefix(target, "data:") {
				continue // inline, e.g. the empty favicon
			}
			if strings.Contains(target, "//") {
				t.Errorf("%s: external reference %q", p, target)
				continue
			}
			if _, _, ok := Asset("/" + strings.TrimPrefix(target, "./")); !ok {
				t.Errorf("%s: reference %q is not an asset", p, target)
			}
		}
	}
}

// The browser test finds the page's parts by these ids.
func TestPageElements(t *testing.T) {
	body, _, _ := Asset("/")
	page := string(body)
	for _, want := range []string{
		`id="token"`, `id="curl"`, `id="status"`, `id="rotate"`, `id="copy"`,
		`<canvas id="matrix" width="640" height="160"`, `type="module"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
}
