// Package web is the browser "virtual AWTRIX" device: a page that logs in to
// the relay over WebTransport, or over a WebSocket where that fails
// (static/wsmux.js), shows the device's token and a ready-made webhook call,
// and draws what it receives on a 32x8 LED canvas. It speaks the device
// protocol (docs/PROTOCOL.md) in JavaScript; static/wire.js mirrors package
// wire.
//
// The page is plain ES modules with no build step and nothing fetched from
// elsewhere: static/ is served as it is, embedded in the binary.
package web

import (
	"embed"
	"path"
	"strings"
)

// The page's files. Only what the browser loads is embedded: the node tests
// (*.test.mjs) and package.json next to them are not.
//
//go:embed static/*.html static/*.js static/*.css
var static embed.FS

// contentTypes are those of the embedded file kinds. A table rather than
// mime.TypeByExtension, whose answer depends on the host's mime files:
// browsers refuse to run a module served with a non-JavaScript type.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

type asset struct {
	body        []byte
	contentType string
}

// assets maps URL paths to files. Static after init.
var assets = load()

func load() map[string]asset {
	entries, err := static.ReadDir("static")
	if err != nil {
		panic("web: " + err.Error()) // the embed directive guarantees the directory
	}
	m := make(map[string]asset, len(entries)+1)
	for _, e := range entries {
		body, err := static.ReadFile("static/" + e.Name())
		if err != nil {
			panic("web: " + err.Error())
		}
		m["/"+e.Name()] = asset{body, contentTypes[path.Ext(e.Name())]}
	}
	m["/"] = m["/index.html"]
	return m
}

// Asset returns an embedded file by URL path ("/" is index.html) and its Content-Type.
// The body is shared: callers must not modify it.
func Asset(path string) (body []byte, contentType string, ok bool) {
	if !strings.HasPrefix(path, "/") {
		return nil, "", false
	}
	a, ok := assets[path]
	return a.body, a.contentType, ok
}
