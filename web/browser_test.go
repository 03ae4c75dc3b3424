package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/internal/webdriver"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
)

// Where the Debian packages chromium and chromium-driver install the
// browser and its driver (`make testdeps`).
const (
	chromiumPath     = "/usr/bin/chromium"
	chromedriverPath = "/usr/bin/chromedriver"
)

// Bounds of the browser test. Each is far above what a loopback relay and a
// local browser take, so that they only ever end a test that is failing.
const (
	browserTestTimeout = 60 * time.Second // the whole test
	connectTimeout     = 20 * time.Second // page loaded to device logged in
	scriptTimeout      = 20 * time.Second // any one script, async ones included
)

// TestBrowserDevice drives the virtual AWTRIX page in a real Chromium
// against a real relay configured as cmd/relay runs in development: the
// page over HTTPS/TCP with the dev CA, WebTransport over QUIC with a
// short-lived certificate that the browser accepts by its hash.
func TestBrowserDevice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), browserTestTimeout)
	defer cancel()

	relay := startDevRelay(t)
	b := startBrowser(t, ctx)
	c := b.open(t, ctx, "https://"+relay.Addr+"/")
	t.Logf("in the page's clock: /device-config fetched at %.0f ms, connected seen at %.0f ms (WebTransport session and login: at most %.0f ms)",
		c.Config, c.Now, c.Now-c.Config)
	b.expectTransport(t, ctx, "webtransport", "WebTransport")
	exercisePage(t, ctx, b, relay)
	if got := relay.Metric(t, `relay_logins_total{transport="webtransport"}`); got != 1 {
		t.Errorf("the relay counted %v WebTransport logins, want 1", got)
	}
	b.checkConsole(t, ctx, nil)
}

// TestBrowserDeviceOverWebSocket: where the browser has no WebTransport,
// or the network lets no UDP through, the page logs in over a WebSocket on
// the relay's TCP port instead (PROTOCOL §2.5), says so, and works the
// same. UDP is blocked by reaching the relay's TCP port through a
// forwarder whose port has nothing on UDP (rejected) or a socket that
// swallows every datagram (blackholed).
func TestBrowserDeviceOverWebSocket(t *testing.T) {
	cases := []struct {
		name           string
		noWebTransport bool // the page finds no WebTransport, as in a browser without it
		block          bool // reach the relay through a TCP-only front
		hole           bool // that front swallows UDP rather than refusing it
	}{
		{name: "no WebTransport", noWebTransport: true},
		{name: "UDP rejected", block: true},
		{name: "UDP blackholed", block: true, hole: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), browserTestTimeout)
			defer cancel()
			relay := startDevRelay(t)
			addr := relay.Addr
			if tc.block {
				addr, _ = relaytest.TCPOnlyFront(t, relay.Addr, tc.hole)
			}
			b := startBrowser(t, ctx)
			if tc.noWebTransport {
				// Before any of the page's scripts run.
				if _, err := b.CDP(ctx, "Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": "delete globalThis.WebTransport;"}); err != nil {
					t.Fatalf("removing WebTransport: %v", err)
				}
			}
			c := b.open(t, ctx, "https://"+addr+"/")
			var hasWT bool
			b.eval(t, ctx, &hasWT, `return typeof WebTransport === 'function';`)
			if hasWT == tc.noWebTransport {
				t.Fatalf("typeof WebTransport === 'function' is %v in the page: the case %q does not hold", hasWT, tc.name)
			}
			took := c.Now - c.Config
			t.Logf("in the page's clock: connected over WebSocket %.0f ms after /device-config was fetched", took)
			if tc.block && took > 2000 {
				t.Errorf("the fallback took %.0f ms; want within 2 s", took)
			}
			b.expectTransport(t, ctx, "websocket", "WebSocket")
			exercisePage(t, ctx, b, relay)
			for transport, want := range map[string]float64{"websocket": 1, "webtransport": 0} {
				if got := relay.Metric(t, `relay_logins_total{transport="`+transport+`"}`); got != want {
					t.Errorf("the relay counted %v %s logins, want %v", got, transport, want)
				}
			}
			// Chromium itself logs the WebTransport attempt that UDP refused.
			b.checkConsole(t, ctx, []string{"Failed to establish a connection to https://" + addr + "/connect: net::ERR_QUIC_PROTOCOL_ERROR"})
		})
	}
}

// startDevRelay runs a relay as cmd/relay runs in development: the dev CA
// on TCP, a short-lived certificate on UDP that browsers take by its hash.
func startDevRelay(t *testing.T) *relaytest.Relay {
	return relaytest.StartDev(t, func(c *server.Config, dev *certs.Dev) {
		sl, err := dev.ShortLived()
		if err != nil {
			t.Fatalf("short-lived certificate: %v", err)
		}
		c.UDPTLS, c.CertHashes = sl.TLSConfig(), sl.Hashes
	})
}

// open loads page and waits for its device to log in.
func (b *browser) open(t *testing.T, ctx context.Context, page string) connected {
	t.Helper()
	start := time.Now()
	if err := b.Navigate(ctx, page); err != nil {
		t.Fatalf("navigate to %s: %v", page, err)
	}
	loaded := time.Since(start)
	c := b.waitConnected(t, ctx)
	t.Logf("Navigate returned after %v, device connected %v after it began",
		loaded.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return c
}

// expectTransport checks the transport the page says it uses, in its test
// hook and on its status line.
func (b *browser) expectTransport(t *testing.T, ctx context.Context, transport, shown string) {
	t.Helper()
	var got struct{ Transport, Status string }
	b.eval(t, ctx, &got, `return {transport: window.awtrixDevice.transport, status: document.getElementById('status').textContent};`)
	if got.Transport != transport || got.Status != "connected over "+shown {
		t.Fatalf("the page is on %q and says %q; want %q and \"connected over %s\"", got.Transport, got.Status, transport, shown)
	}
}

// exercisePage runs the page through what a device does: its token on
// show, a notification and a drawing rendered, AWTRIX 3's modes and reads,
// and a rotation.
func exercisePage(t *testing.T, ctx context.Context, b *browser, relay *relaytest.Relay) {
	t.Helper()
	// The token on the page is the device's, well formed, and in the curl line.
	var shown struct{ Token, DeviceToken, Curl string }
	b.eval(t, ctx, &shown, `return {
		token: document.getElementById('token').textContent,
		deviceToken: window.awtrixDevice.token,
		curl: document.getElementById('curl').textContent,
	}`)
	tok := shown.Token
	if tok != shown.DeviceToken {
		t.Fatalf("#token shows %q, awtrixDevice.token is %q", tok, shown.DeviceToken)
	}
	if err := wire.CheckToken([]byte(tok)); err != nil {
		t.Fatalf("page token %q: %v", tok, err)
	}
	if !strings.Contains(shown.Curl, tok) {
		t.Fatalf("#curl %q lacks the token", shown.Curl)
	}
	// On the development CA the line tells curl which CA to trust.
	b.poll(t, ctx, "the curl line to name the dev CA", func() (bool, any) {
		var curl string
		b.eval(t, ctx, &curl, `return document.getElementById('curl').textContent`)
		return strings.HasPrefix(curl, "curl --cacert relay-state/ca.pem -H"), curl
	})

	// A notification: the page's acknowledgement is the webhook's answer,
	// and the text is on the matrix in red.
	status, body := relay.Post(t, "notify", tok, `{"text":"Hi","color":[255,0,0]}`)
	var text struct {
		OK       bool   `json:"ok"`
		Rendered string `json:"rendered"`
		Text     string `json:"text"`
	}
	if err := json.Unmarshal(body, &text); status != 200 || err != nil || !text.OK || text.Rendered != "text" || text.Text != "Hi" {
		t.Fatalf("notify: %d %s, want 200 {ok:true, rendered:\"text\", text:\"Hi\"}", status, body)
	}
	b.expectLastReply(t, ctx, body)
	var red [][2]int
	b.poll(t, ctx, "a red LED after notify", func() (bool, any) {
		red = nil
		b.eval(t, ctx, &red, `const d = window.awtrixDevice, out = [];
			for (let y = 0; y < 8; y++) for (let x = 0; x < 32; x++) {
				const [r, g, b] = d.pixel(x, y);
				if (r > 200 && g < 50 && b < 50) out.push([x, y]);
			}
			return out;`)
		return len(red) > 0, red
	})
	t.Logf("notify lit %d red LEDs", len(red))

	// A drawing, command by command.
	status, body = relay.Post(t, "draw", tok, `{"draw":[
		{"type":"fill","color":[0,0,0]},
		{"type":"pixel","position":[3,4],"color":[0,255,0]},
		{"type":"rect","position":[10,1],"size":[5,4],"color":[0,0,255]},
		{"type":"show"}]}`)
	var drawn struct {
		OK       bool   `json:"ok"`
		Rendered string `json:"rendered"`
	}
	if err := json.Unmarshal(body, &drawn); status != 200 || err != nil || !drawn.OK || drawn.Rendered != "draw" {
		t.Fatalf("draw: %d %s, want 200 {ok:true, rendered:\"draw\"}", status, body)
	}
	b.expectLastReply(t, ctx, body)
	black, green, blue := [3]int{0, 0, 0}, [3]int{0, 255, 0}, [3]int{0, 0, 255}
	want := []struct {
		x, y int
		rgb  [3]int
		what string
	}{
		{3, 4, green, "the pixel"},
		{10, 1, blue, "the rectangle's top left corner"},
		{14, 4, blue, "the rectangle's bottom right corner"},
		{12, 2, black, "inside the rectangle's outline"},
		{0, 0, black, "the filled background"},
	}
	b.poll(t, ctx, "the drawing on the matrix", func() (bool, any) {
		var got [][3]int
		points := make([][2]int, len(want))
		for i, w := range want {
			points[i] = [2]int{w.x, w.y}
		}
		b.eval(t, ctx, &got, `return arguments[0].map(([x, y]) => window.awtrixDevice.pixel(x, y));`, points)
		var wrong []string
		for i, w := range want {
			if got[i] != w.rgb {
				wrong = append(wrong, fmt.Sprintf("(%d,%d) %s is %v, want %v", w.x, w.y, w.what, got[i], w.rgb))
			}
		}
		return len(wrong) == 0, wrong
	})
	b.saveScreenshot(t, ctx, strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())+".png")
	testAWTRIX3Modes(t, ctx, b, relay, tok)

	// Rotation: the old token stops reaching the page at once, the new one
	// reaches it, and the page shows it.
	var rot struct{ Token, Error string }
	b.evalAsync(t, ctx, &rot, `const done = arguments[arguments.length - 1];
		window.awtrixDevice.rotate().then(
			(token) => done({token}),
			(err) => done({error: String(err && err.message || err)}));`)
	if rot.Error != "" {
		t.Fatalf("awtrixDevice.rotate(): %s", rot.Error)
	}
	if err := wire.CheckToken([]byte(rot.Token)); err != nil || rot.Token == tok {
		t.Fatalf("rotate() gave %q (old %q): %v", rot.Token, tok, err)
	}
	if status, body := relay.Post(t, "notify", tok, `{"text":"old"}`); status != 404 || relaytest.ErrorCode(t, body) != "no_device" {
		t.Fatalf("old token after rotation: %d %s, want 404 no_device", status, body)
	}
	if status, body := relay.Post(t, "notify", rot.Token, `{"text":"new"}`); status != 200 {
		t.Fatalf("new token after rotation: %d %s, want 200", status, body)
	}
	var after struct{ Token, DeviceToken string }
	b.eval(t, ctx, &after, `return {token: document.getElementById('token').textContent, deviceToken: window.awtrixDevice.token};`)
	if after.Token != rot.Token || after.DeviceToken != rot.Token {
		t.Fatalf("after rotation #token shows %q and awtrixDevice.token is %q, want %q", after.Token, after.DeviceToken, rot.Token)
	}

}

// browser is a Chromium session with the test's helpers.
type browser struct {
	*webdriver.Session
	driver *webdriver.Driver
}

// startBrowser starts chromedriver and a headless Chromium that trusts any
// certificate for pages (the relay's dev CA); WebTransport still goes by
// serverCertificateHashes. Both end with the test.
func startBrowser(t *testing.T, ctx context.Context, flags ...string) *browser {
	t.Helper()
	for _, p := range []string{chromiumPath, chromedriverPath} {
		if _, err := os.Stat(p); err != nil {
			// Never a skip: a browser test that skips quietly tests nothing.
			t.Fatalf("\n\n*** %s is missing: the browser test needs Chromium and chromedriver. ***\n"+
				"*** Install them with `make testdeps`, or as root: apt-get install chromium chromium-driver ***\n\n(%v)", p, err)
		}
	}
	d, err := webdriver.Start(ctx, chromedriverPath)
	if err != nil {
		t.Fatalf("chromedriver: %v", err)
	}
	b := &browser{driver: d}
	t.Cleanup(func() {
		if t.Failed() && b.Session != nil {
			b.dumpOnFailure(t)
		}
		if err := d.Close(); err != nil {
			t.Logf("closing the browser: %v", err)
		}
	})
	b.Session, err = d.NewSession(ctx, webdriver.Options{
		Binary: chromiumPath,
		Args: append([]string{
			"--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-dev-shm-usage", "--window-size=900,700",
			"--user-data-dir=" + t.TempDir(),
		}, flags...),
		AcceptInsecureCerts: true,
		BrowserLogs:         true,
		ScriptTimeout:       scriptTimeout,
		PageLoadTimeout:     connectTimeout,
	})
	if err != nil {
		t.Fatalf("browser session: %v\nchromedriver output:\n%s", err, d.Output())
	}
	return b
}

// eval runs script and decodes its result into out.
func (b *browser) eval(t *testing.T, ctx context.Context, out any, script string, args ...any) {
	t.Helper()
	v, err := b.ExecuteScript(ctx, script, args...)
	if err != nil {
		t.Fatalf("script %.60q: %v", script, err)
	}
	if err := json.Unmarshal(v, out); err != nil {
		t.Fatalf("script %.60q returned %s: %v", script, v, err)
	}
}

// evalAsync is eval for a script that ends by calling its last argument.
func (b *browser) evalAsync(t *testing.T, ctx context.Context, out any, script string, args ...any) {
	t.Helper()
	v, err := b.ExecuteAsyncScript(ctx, script, args...)
	if err != nil {
		t.Fatalf("async script %.60q: %v", script, err)
	}
	if err := json.Unmarshal(v, out); err != nil {
		t.Fatalf("async script %.60q returned %s: %v", script, v, err)
	}
}

// poll calls cond until it reports true, failing the test with what cond
// last saw if that takes longer than connectTimeout.
func (b *browser) poll(t *testing.T, ctx context.Context, what string, cond func() (bool, any)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, seen := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; last seen: %v", what, ctx.Err(), seen)
		case <-tick.C:
		}
	}
}

// connected is when the page saw what, in ms since its navigation started.
type connected struct {
	Config float64 // the last /device-config fetch ended, just before WebTransport opened
	Now    float64 // the poll that saw state "connected"
}

// waitConnected waits until the page's device has logged in; on timeout it
// reports the page's status line, which says why it is not connected.
func (b *browser) waitConnected(t *testing.T, ctx context.Context) connected {
	t.Helper()
	var c connected
	b.poll(t, ctx, "the page's device to connect", func() (bool, any) {
		var s struct {
			State, Status string
			connected
		}
		b.eval(t, ctx, &s, `const cfg = performance.getEntriesByName(location.origin + '/device-config').at(-1);
			return {
				state: window.awtrixDevice ? window.awtrixDevice.state : 'no window.awtrixDevice',
				status: document.getElementById('status').textContent,
				config: cfg ? cfg.responseEnd : 0,
				now: performance.now(),
			};`)
		c = s.connected
		return s.State == "connected", fmt.Sprintf("state %q, status %q", s.State, s.Status)
	})
	return c
}

// expectLastReply checks that the webhook's answer is the page's reply, byte
// for byte.
func (b *browser) expectLastReply(t *testing.T, ctx context.Context, body []byte) {
	t.Helper()
	var last string
	b.eval(t, ctx, &last, `return window.awtrixDevice.lastReply;`)
	if last != string(body) {
		t.Fatalf("webhook answered %s, the page's last reply is %s", body, last)
	}
}

// artifactsDir is $ARTIFACTS_DIR, or a directory under the system's
// temporary one.
func artifactsDir() string {
	if d := os.Getenv("ARTIFACTS_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "awtrix-relay-artifacts")
}

// saveScreenshot writes a PNG of the page to the artifacts directory.
func (b *browser) saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := b.Screenshot(ctx)
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	dir := artifactsDir()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s", path)
}

// checkConsole fails the test on every console error of the page, except
// those that contain one of expected: errors the browser itself logs for
// what the test does on purpose. The log is logged in full whatever its
// levels, for whoever reads a failure.
func (b *browser) checkConsole(t *testing.T, ctx context.Context, expected []string) {
	t.Helper()
	entries, err := b.Logs(ctx, "browser")
	if err != nil {
		t.Fatalf("browser console: %v", err)
	}
	for _, e := range entries {
		t.Logf("console %s %s: %s", e.Level, e.Source, e.Message)
		if e.Level == "SEVERE" && !slices.ContainsFunc(expected, func(x string) bool { return strings.Contains(e.Message, x) }) {
			t.Errorf("console error from the page: %s: %s", e.Source, e.Message)
		}
	}
}

// dumpOnFailure saves what a failed run leaves to look at: a screenshot and
// the console.
func (b *browser) dumpOnFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.saveScreenshot(t, ctx, "browser-device-failed.png")
	entries, err := b.Logs(ctx, "browser")
	if err != nil {
		t.Logf("browser console: %v", err)
	}
	for _, e := range entries {
		t.Logf("console %s %s: %s", e.Level, e.Source, e.Message)
	}
}

// testAWTRIX3Modes: the page is an AWTRIX 3 clock for the modes it can
// show (an indicator in its corner, the mood light over everything, a
// sound as a cue on the page, dismiss, sleep as a dark screen) and answers
// the reads (stats from its own state, screen with the pixels it shows).
func testAWTRIX3Modes(t *testing.T, ctx context.Context, b *browser, relay *relaytest.Relay, tok string) {
	t.Helper()
	pixelsAre := func(what string, want map[[2]int][3]int) {
		t.Helper()
		b.poll(t, ctx, what, func() (bool, any) {
			var wrong []string
			for p, rgb := range want {
				var got [3]int
				b.eval(t, ctx, &got, `return window.awtrixDevice.pixel(arguments[0], arguments[1]);`, p[0], p[1])
				if got != rgb {
					wrong = append(wrong, fmt.Sprintf("(%d,%d) is %v, want %v", p[0], p[1], got, rgb))
				}
			}
			return len(wrong) == 0, wrong
		})
	}
	post := func(mode, body string) {
		t.Helper()
		if status, reply := relay.Post(t, mode, tok, body); status != 200 {
			t.Fatalf("%s %s: %d %s", mode, body, status, reply)
		}
	}
	red, green, black := [3]int{255, 0, 0}, [3]int{0, 255, 0}, [3]int{0, 0, 0}

	post("indicator1", `{"color":[255,0,0]}`)
	pixelsAre("indicator 1 in the top right corner", map[[2]int][3]int{{31, 0}: red, {30, 0}: red, {31, 1}: red, {3, 4}: green})

	// Reads: a GET, answered with the page's own state and pixels.
	status, body := relay.Do(t, "GET", relay.URL("stats", tok), "", nil)
	var stats struct {
		Version    string `json:"version"`
		Indicator1 bool   `json:"indicator1"`
		Matrix     bool   `json:"matrix"`
		Messages   int    `json:"messages"`
	}
	if err := json.Unmarshal(body, &stats); status != 200 || err != nil || stats.Version != "virtual" || !stats.Indicator1 || !stats.Matrix || stats.Messages < 3 {
		t.Fatalf("GET mode=stats: %d %s", status, body)
	}
	status, body = relay.Do(t, "GET", relay.URL("screen", tok), "", nil)
	var screen []int
	if err := json.Unmarshal(body, &screen); status != 200 || err != nil || len(screen) != 256 {
		t.Fatalf("GET mode=screen: %d %.80s", status, body)
	}
	for _, p := range []struct{ x, y, rgb int }{{31, 0, 0xff0000}, {3, 4, 0x00ff00}, {0, 0, 0}} {
		if got := screen[p.y*32+p.x]; got != p.rgb {
			t.Errorf("screen (%d,%d) is %06x, want %06x", p.x, p.y, got, p.rgb)
		}
	}

	post("moodlight", `{"brightness":255,"color":[0,0,255]}`)
	pixelsAre("the mood light over the drawing, the indicator on top", map[[2]int][3]int{{3, 4}: {0, 0, 255}, {20, 6}: {0, 0, 255}, {31, 0}: red})
	post("moodlight", ``)
	pixelsAre("the drawing back after the mood light", map[[2]int][3]int{{3, 4}: green, {20, 6}: black})

	post("sound", `{"sound":"alarm"}`)
	b.poll(t, ctx, "the sound's cue on the page", func() (bool, any) {
		var cue string
		b.eval(t, ctx, &cue, `return window.awtrixDevice.sound;`)
		return strings.Contains(cue, "alarm"), cue
	})

	post("sleep", `{"sleep":1}`)
	pixelsAre("a dark screen while asleep", map[[2]int][3]int{{3, 4}: black, {31, 0}: black})
	pixelsAre("the screen back after a second of sleep", map[[2]int][3]int{{3, 4}: green, {31, 0}: red})

	post("indicator1", ``)
	post("dismiss", ``)
	pixelsAre("nothing left after dismiss and the indicator off", map[[2]int][3]int{{3, 4}: black, {31, 0}: black})
}
