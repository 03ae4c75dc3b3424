package webdriver

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeDriverEnv makes the test binary act as chromedriver (see TestMain),
// so that Start and Close run against a real process without a browser.
const fakeDriverEnv = "WEBDRIVER_TEST_FAKE_CHROMEDRIVER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeDriverEnv) != "" {
		fakeChromedriver()
		return
	}
	goleak.VerifyTestMain(m)
}

// fakeChromedriver answers GET /status on --port=N until killed. With
// fakeDriverEnv=exit it exits at once instead, like a chromedriver whose
// port is taken.
func fakeChromedriver() {
	if os.Getenv(fakeDriverEnv) == "exit" {
		fmt.Fprintln(os.Stderr, "bind() failed: Address already in use")
		os.Exit(1)
	}
	fs := flag.NewFlagSet("chromedriver", flag.ExitOnError)
	port := fs.Int("port", 0, "")
	fs.Parse(os.Args[1:])
	http.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"value":{"ready":true,"message":"ChromeDriver ready for new sessions."}}`)
	})
	if err := http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", *port), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// fake is a WebDriver server that records the commands it gets and answers
// from a table.
type fake struct {
	mu   sync.Mutex // guards got
	got  []string   // "METHOD /path body"
	srv  *httptest.Server
	resp map[string]string // "METHOD /path" -> body with status 200
}

func newFake(t *testing.T, resp map[string]string) (*fake, *client) {
	f := &fake{resp: resp}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := new(strings.Builder)
		if r.Body != nil {
			var v any
			if err := json.NewDecoder(r.Body).Decode(&v); err == nil {
				j, _ := json.Marshal(v)
				b.Write(j)
			}
		}
		key := r.Method + " " + r.URL.Path
		f.mu.Lock()
		f.got = append(f.got, strings.TrimSpace(key+" "+b.String()))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if body, ok := f.resp[key]; ok {
			fmt.Fprint(w, body)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"value":{"error":"unknown command","message":"unknown command: `+key+`","stacktrace":"#0 0x55"}}`)
	}))
	t.Cleanup(f.srv.Close)
	c := &client{base: f.srv.URL, http: f.srv.Client()}
	return f, c
}

func (f *fake) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func TestSessionWireFormat(t *testing.T) {
	ctx := context.Background()
	f, c := newFake(t, map[string]string{
		"POST /session":                     `{"value":{"sessionId":"s1","capabilities":{"browserName":"chrome"}}}`,
		"POST /session/s1/url":              `{"value":null}`,
		"POST /session/s1/execute/sync":     `{"value":{"state":"connected","n":3}}`,
		"POST /session/s1/execute/async":    `{"value":"tok"}`,
		"GET /session/s1/screenshot":        `{"value":"iVBORw0KGgo="}`,
		"POST /session/s1/goog/cdp/execute": `{"value":{"identifier":"1"}}`,
		"POST /session/s1/se/log":           `{"value":[{"level":"SEVERE","source":"javascript","message":"boom","timestamp":1700000000000}]}`,
		"DELETE /session/s1":                `{"value":null}`,
	})
	s, err := newSession(ctx, c, Options{
		Binary:              "/usr/bin/chromium",
		Args:                []string{"--headless=new"},
		AcceptInsecureCerts: true,
		BrowserLogs:         true,
		ScriptTimeout:       2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Navigate(ctx, "https://127.0.0.1:1/"); err != nil {
		t.Fatal(err)
	}
	v, err := s.ExecuteScript(ctx, "return 1", 1, "a")
	if err != nil || string(v) != `{"state":"connected","n":3}` {
		t.Fatalf("ExecuteScript = %s, %v", v, err)
	}
	v, err = s.ExecuteAsyncScript(ctx, "arguments[0]('tok')")
	if err != nil || string(v) != `"tok"` {
		t.Fatalf("ExecuteAsyncScript = %s, %v", v, err)
	}
	v, err = s.CDP(ctx, "Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": "x"})
	if err != nil || string(v) != `{"identifier":"1"}` {
		t.Fatalf("CDP = %s, %v", v, err)
	}
	png, err := s.Screenshot(ctx)
	if err != nil || string(png) != "\x89PNG\r\n\x1a\n" {
		t.Fatalf("Screenshot = %q, %v", png, err)
	}
	logs, err := s.Logs(ctx, "browser")
	if err != nil || len(logs) != 1 || logs[0].Level != "SEVERE" || logs[0].Message != "boom" || logs[0].Time().Unix() != 1700000000 {
		t.Fatalf("Logs = %+v, %v", logs, err)
	}
	if err := s.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx); err != nil { // idempotent: no second DELETE
		t.Fatal(err)
	}

	want := []string{
		`POST /session {"capabilities":{"alwaysMatch":{"acceptInsecureCerts":true,"browserName":"chrome",` +
			`"goog:chromeOptions":{"args":["--headless=new"],"binary":"/usr/bin/chromium"},` +
			`"goog:loggingPrefs":{"browser":"ALL"},"timeouts":{"script":2000}}}}`,
		`POST /session/s1/url {"url":"https://127.0.0.1:1/"}`,
		`POST /session/s1/execute/sync {"args":[1,"a"],"script":"return 1"}`,
		`POST /session/s1/execute/async {"args":[],"script":"arguments[0]('tok')"}`,
		`POST /session/s1/goog/cdp/execute {"cmd":"Page.addScriptToEvaluateOnNewDocument","params":{"source":"x"}}`,
		`GET /session/s1/screenshot`,
		`POST /session/s1/se/log {"type":"browser"}`,
		`DELETE /session/s1`,
	}
	got := f.commands()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	_, c := newFake(t, map[string]string{
		"POST /session": `{"value":{"sessionId":"s1"}}`,
	})
	s, err := newSession(ctx, c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.ExecuteScript(ctx, "return 1")
	var werr *Error
	if !errors.As(err, &werr) || werr.Code != "unknown command" || werr.Status != 404 || werr.Stacktrace == "" {
		t.Fatalf("error %v (%#v), want *Error unknown command, HTTP 404", err, werr)
	}

	// Not a W3C error, not JSON, no session id: plain errors, never *Error.
	_, c = newFake(t, map[string]string{"POST /session": `{"value":{}}`})
	if _, err := newSession(ctx, c, Options{}); err == nil || errors.As(err, &werr) {
		t.Errorf("no sessionId: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	c = &client{base: srv.URL, http: srv.Client()}
	if _, err := newSession(ctx, c, Options{}); err == nil || errors.As(err, &werr) || !strings.Contains(err.Error(), "502") {
		t.Errorf("HTML answer: %v", err)
	}
}

func TestErrorMessageDropsSessionInfo(t *testing.T) {
	e := &Error{Status: 500, Code: "javascript error", Message: "javascript error: x is not defined\n  (Session info: chrome=156.0)"}
	if got, want := e.Error(), "webdriver: javascript error (HTTP 500): javascript error: x is not defined"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestStartFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Start(ctx, "/nonexistent/chromedriver"); err == nil {
		t.Error("Start of a missing binary succeeded")
	}
	t.Setenv(fakeDriverEnv, "exit")
	_, err := Start(ctx, os.Args[0])
	if !errors.Is(err, errExited) || !strings.Contains(err.Error(), "Address already in use") {
		t.Errorf("Start of a driver that exits: %v, want errExited with its output", err)
	}
}
