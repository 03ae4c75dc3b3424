// Package webdriver is a small W3C WebDriver client for tests that drive a
// real browser: it starts chromedriver, opens a browser session and speaks
// the wire protocol (https://www.w3.org/TR/webdriver2/) over net/http.
//
// It covers what the relay's browser test needs and nothing more:
//
//	d, err := webdriver.Start(ctx, "/usr/bin/chromedriver")
//	defer d.Close()
//	s, err := d.NewSession(ctx, webdriver.Options{Binary: "/usr/bin/chromium", Args: args})
//	err = s.Navigate(ctx, "https://127.0.0.1:8443/")
//	v, err := s.ExecuteScript(ctx, "return document.title")
//	png, err := s.Screenshot(ctx)
//	logs, err := s.Logs(ctx, "browser")
//
// Errors the driver reports come back as *Error, which carries the W3C
// error code ("no such element", "script timeout", ...).
//
// Only tests import this package.
package webdriver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Error is an error the WebDriver server answered with: the "value" object of
// the W3C error response, and the HTTP status it came with.
type Error struct {
	Status     int    // HTTP status
	Code       string `json:"error"` // W3C error code, e.g. "javascript error"
	Message    string `json:"message"`
	Stacktrace string `json:"stacktrace"`
}

func (e *Error) Error() string {
	msg := e.Message
	// chromedriver repeats its own build information in every message.
	if i := strings.Index(msg, "\n  (Session info:"); i >= 0 {
		msg = msg[:i]
	}
	return fmt.Sprintf("webdriver: %s (HTTP %d): %s", e.Code, e.Status, msg)
}

// ErrClosed is returned by calls on a Driver after Close.
var ErrClosed = errors.New("webdriver: driver closed")

// Options configures a Chrome/Chromium session.
type Options struct {
	Binary string   // the browser executable; chromedriver's default if empty
	Args   []string // browser command-line flags
	// AcceptInsecureCerts lets pages load over TLS the browser does not
	// trust (a test's development CA).
	AcceptInsecureCerts bool
	// BrowserLogs records the console at every level for Logs("browser").
	BrowserLogs bool
	// ScriptTimeout bounds each ExecuteScript and ExecuteAsyncScript call;
	// the driver's default (30 s) if zero.
	ScriptTimeout time.Duration
	// PageLoadTimeout bounds Navigate; the driver's default (300 s) if zero.
	PageLoadTimeout time.Duration
}

// capabilities is the body of New Session.
func (o Options) capabilities() map[string]any {
	chrome := map[string]any{}
	if o.Binary != "" {
		chrome["binary"] = o.Binary
	}
	args := o.Args
	if args == nil {
		args = []string{}
	}
	chrome["args"] = args
	always := map[string]any{
		"browserName":         "chrome",
		"acceptInsecureCerts": o.AcceptInsecureCerts,
		"goog:chromeOptions":  chrome,
	}
	if o.BrowserLogs {
		always["goog:loggingPrefs"] = map[string]string{"browser": "ALL"}
	}
	timeouts := map[string]int64{}
	if o.ScriptTimeout > 0 {
		timeouts["script"] = o.ScriptTimeout.Milliseconds()
	}
	if o.PageLoadTimeout > 0 {
		timeouts["pageLoad"] = o.PageLoadTimeout.Milliseconds()
	}
	if len(timeouts) > 0 {
		always["timeouts"] = timeouts
	}
	return map[string]any{"capabilities": map[string]any{"alwaysMatch": always}}
}

// client is the wire protocol against one WebDriver server. Static after
// construction.
type client struct {
	base string // http://127.0.0.1:PORT, no trailing slash
	http *http.Client
}

// do sends one command and decodes the "value" of the answer into out
// (which may be nil). A W3C error answer is returned as *Error.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("webdriver: %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("webdriver: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("webdriver: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("webdriver: %s %s: reading the answer: %w", method, path, err)
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("webdriver: %s %s: HTTP %d, not JSON: %.200q", method, path, resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{Status: resp.StatusCode}
		if err := json.Unmarshal(env.Value, e); err != nil || e.Code == "" {
			return fmt.Errorf("webdriver: %s %s: HTTP %d without a W3C error: %.200q", method, path, resp.StatusCode, raw)
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(env.Value, out); err != nil {
		return fmt.Errorf("webdriver: %s %s: decoding the value: %w", method, path, err)
	}
	return nil
}

// Session is one browser session. Its methods may be called from one
// goroutine at a time, as WebDriver runs one command per session at once.
type Session struct {
	ID string // static after NewSession

	c *client
	d *Driver // owner, told when the session is deleted; nil in unit tests

	once sync.Once // guards the DELETE
	err  error     // the DELETE's result
}

// newSession sends New Session.
func newSession(ctx context.Context, c *client, opts Options) (*Session, error) {
	var v struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.do(ctx, http.MethodPost, "/session", opts.capabilities(), &v); err != nil {
		return nil, err
	}
	if v.SessionID == "" {
		return nil, errors.New("webdriver: new session: no sessionId in the answer")
	}
	return &Session{ID: v.SessionID, c: c}, nil
}

func (s *Session) path(p string) string { return "/session/" + s.ID + p }

// Navigate loads url and waits for the page to load.
func (s *Session) Navigate(ctx context.Context, url string) error {
	return s.c.do(ctx, http.MethodPost, s.path("/url"), map[string]string{"url": url}, nil)
}

// ExecuteScript runs script as the body of a function with args as its
// arguments and returns what it returns, as JSON. A thrown exception is an
// *Error with Code "javascript error".
func (s *Session) ExecuteScript(ctx context.Context, script string, args ...any) (json.RawMessage, error) {
	return s.execute(ctx, "/execute/sync", script, args)
}

// ExecuteAsyncScript runs script like ExecuteScript with one more argument,
// a callback, and returns the value the script passes to it. Not calling it
// within the script timeout is an *Error with Code "script timeout".
func (s *Session) ExecuteAsyncScript(ctx context.Context, script string, args ...any) (json.RawMessage, error) {
	return s.execute(ctx, "/execute/async", script, args)
}

func (s *Session) execute(ctx context.Context, endpoint, script string, args []any) (json.RawMessage, error) {
	if args == nil {
		args = []any{} // the protocol requires an array
	}
	var v json.RawMessage
	err := s.c.do(ctx, http.MethodPost, s.path(endpoint), map[string]any{"script": script, "args": args}, &v)
	return v, err
}

// CDP sends one Chrome DevTools Protocol command (Page.addScriptToEvaluateOnNewDocument,
// say) to the session's page and returns its result. It is chromedriver's
// extension of the protocol.
func (s *Session) CDP(ctx context.Context, cmd string, params map[string]any) (json.RawMessage, error) {
	if params == nil {
		params = map[string]any{}
	}
	var v json.RawMessage
	err := s.c.do(ctx, http.MethodPost, s.path("/goog/cdp/execute"), map[string]any{"cmd": cmd, "params": params}, &v)
	return v, err
}

// Screenshot returns a PNG of the current viewport.
func (s *Session) Screenshot(ctx context.Context) ([]byte, error) {
	var b64 string
	if err := s.c.do(ctx, http.MethodGet, s.path("/screenshot"), nil, &b64); err != nil {
		return nil, err
	}
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("webdriver: screenshot: %w", err)
	}
	return png, nil
}

// LogEntry is one entry of a chromedriver log.
type LogEntry struct {
	Level     string `json:"level"`  // "SEVERE", "WARNING", "INFO", "DEBUG"
	Source    string `json:"source"` // "javascript", "console-api", "network", ...
	Message   string `json:"message"`
	Timestamp int64  `json:"timestamp"` // ms since the Unix epoch
}

// Time is the entry's timestamp.
func (e LogEntry) Time() time.Time { return time.UnixMilli(e.Timestamp) }

// Logs returns, and clears, the entries of log typ ("browser" for the
// console, which needs Options.BrowserLogs). It is chromedriver's
// extension of the protocol.
func (s *Session) Logs(ctx context.Context, typ string) ([]LogEntry, error) {
	var v []LogEntry
	err := s.c.do(ctx, http.MethodPost, s.path("/se/log"), map[string]string{"type": typ}, &v)
	return v, err
}

// Delete ends the session and closes its browser. Later calls return the
// first call's result.
func (s *Session) Delete(ctx context.Context) error {
	s.once.Do(func() {
		s.err = s.c.do(ctx, http.MethodDelete, s.path(""), nil, nil)
		if s.d != nil {
			s.d.forget(s)
		}
	})
	return s.err
}
