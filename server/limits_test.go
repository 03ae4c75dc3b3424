package server_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
)

// The webhook rate limits, over real sockets. Every loopback client is one
// source (127.0.0.1); clientFrom gives a test a second one (127.0.0.2), so
// that "other sources are unaffected" is shown, not assumed.

// response is one HTTP response, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func send(t *testing.T, c *http.Client, method, url string) response {
	t.Helper()
	return sendBody(t, c, method, url, "", `{"text":"x"}`)
}

// sendBody sends body, with contentType unless it is "".
func sendBody(t *testing.T, c *http.Client, method, url, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// wantRateLimited checks a 429 in the relay's error shape with a
// Retry-After of at least one second, and returns the Retry-After.
func wantRateLimited(t *testing.T, a response) int {
	t.Helper()
	if a.status != 429 || relaytest.ErrorCode(t, a.body) != "rate_limited" {
		t.Fatalf("%d %s; want 429 rate_limited", a.status, a.body)
	}
	n, err := strconv.Atoi(a.header.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Fatalf("Retry-After %q; want whole seconds >= 1", a.header.Get("Retry-After"))
	}
	return n
}

// clientFrom is an HTTPS client of e whose connections come from ip, a
// loopback address other than 127.0.0.1.
func clientFrom(t *testing.T, e *relaytest.Relay, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	if c, err := d.Dial("tcp", e.Addr); err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Skipf("cannot send from %s (only Linux routes all of 127/8 to loopback; on macOS: ifconfig lo0 alias %s): the second-source checks need it", ip, ip)
		}
		t.Fatal(err)
	} else {
		c.Close()
	}
	tr := &http.Transport{TLSClientConfig: e.TLS.Clone(), DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestTokenRateLimit: burst+over webhooks at once to one device; exactly
// over get 429, and another device's token from the same client still
// gets through: the limit is keyed by token, not by address.
func TestTokenRateLimit(t *testing.T) {
	const burst, over = 5, 3
	// One token per 100 s: nothing refills while the test runs, so the
	// count is exact.
	e := relaytest.Start(t, func(c *server.Config) { c.Webhook.PerToken = limit.Rate{PerSecond: 0.01, Burst: burst} })
	tok, other := wire.NewToken(), wire.NewToken()
	e.Dial(t, tok, echo("flooded"))
	e.Dial(t, other, echo("other"))

	answers := make(chan response, burst+over)
	var wg sync.WaitGroup
	for range burst + over {
		wg.Go(func() { answers <- send(t, e.HTTP, "POST", e.URL("notify", tok)) })
	}
	wg.Wait()
	close(answers)
	var ok, limited int
	for a := range answers {
		switch a.status {
		case 200:
			ok++
		case 429:
			limited++
			if n := wantRateLimited(t, a); n < 99 {
				t.Errorf("Retry-After %d; want about 100 s, the next token's arrival", n)
			}
		default:
			t.Errorf("%d %s; want 200 or 429", a.status, a.body)
		}
	}
	if ok != burst || limited != over {
		t.Fatalf("%d delivered, %d limited; want %d and %d", ok, limited, burst, over)
	}
	// The same client, the same address, another token: unaffected.
	if a := send(t, e.HTTP, "POST", e.URL("notify", other)); a.status != 200 || !strings.Contains(string(a.body), `"other"`) {
		t.Fatalf("other token: %d %s; want 200 from the other device", a.status, a.body)
	}
	if n := metric(t, e, `relay_webhooks_total{outcome="rate_limited"}`); n != over {
		t.Errorf("rate_limited outcomes: %v, want %d", n, over)
	}
	if n := metric(t, e, `relay_rate_limited_total{limit="token"}`); n != over {
		t.Errorf("token limit refusals: %v, want %d", n, over)
	}
	// The parallel posts may have left a connection that never carried a
	// request; the relay's drain would wait its DrainTimeout for it.
	e.HTTP.CloseIdleConnections()
}

// TestSourceRateLimit: a source over its limit gets 429 on HTTPS and
// HTTP/3 alike; another source, the device page and the device itself are
// unaffected; once Retry-After has passed the source gets through again.
func TestSourceRateLimit(t *testing.T) {
	const burst, rate = 2, 1 // per second: a refused source stays refused for a while
	e := relaytest.Start(t, func(c *server.Config) { c.Webhook.PerSource = limit.Rate{PerSecond: rate, Burst: burst} })
	tok := wire.NewToken()
	e.Dial(t, tok, echo("d"))
	second := clientFrom(t, e, "127.0.0.2")
	url := e.URL("notify", tok)

	start := time.Now()
	var passed int
	var refused response
	for range 2 * burst {
		a := send(t, e.HTTP, "POST", url)
		if a.status == 200 {
			passed++
			continue
		}
		refused = a
		break
	}
	wantRateLimited(t, refused)
	if most := burst + int(time.Since(start).Seconds()*rate); passed > most {
		t.Fatalf("%d webhooks passed before the first 429; at most %d may", passed, most)
	}
	// The limit is per source and per webhook: another address, the
	// device page and the connected device carry on.
	if a := send(t, second, "POST", url); a.status != 200 {
		t.Fatalf("from 127.0.0.2: %d %s; want 200", a.status, a.body)
	}
	if status, _ := e.Do(t, "GET", "https://"+e.Addr+"/", "", nil); status != 200 {
		t.Fatalf("device page while limited: %d", status)
	}
	if e.Router().Lookup(router.KeyOf([]byte(tok))) == nil {
		t.Fatal("the device lost its session")
	}
	// HTTP/3 is the same handler and the same source: no way around.
	h3 := h3Client(t, e)
	wantRateLimited(t, send(t, h3, "POST", url))

	// Refusals take nothing from the bucket: polling gets through as soon
	// as a token is back.
	relaytest.WaitFor(t, func() bool { return send(t, e.HTTP, "POST", url).status == 200 })
	if n := metric(t, e, `relay_rate_limited_total{limit="ip"}`); n < 2 {
		t.Errorf("source limit refusals: %v, want at least 2", n)
	}
}

// TestMissRateLimit: a source probing tokens gets 404 until its misses are
// used up, then 429. Every no_device 404 is the same bytes, whether the
// token never existed or its device left. The prober's own connected
// device still gets its messages: only misses are limited, so a shared
// address with a prober behind it does not cut off its neighbours (and a
// prober that hits a token learns nothing it would not by a 200 anyway).
func TestMissRateLimit(t *testing.T) {
	const misses = 3
	e := relaytest.Start(t, func(c *server.Config) { c.Webhook.Misses = limit.Rate{PerSecond: 0.01, Burst: misses} })
	known := wire.NewToken()
	e.Dial(t, known, echo("known"))
	second := clientFrom(t, e, "127.0.0.2")

	// A token whose device has left: its 404, from the second source.
	gone := wire.NewToken()
	c, _ := e.Dial(t, gone, echo("gone"))
	c.Close()
	relaytest.WaitFor(t, func() bool { return e.Router().Lookup(router.KeyOf([]byte(gone))) == nil })
	left := send(t, second, "POST", e.URL("notify", gone))

	var probes []response
	for range misses {
		probes = append(probes, send(t, e.HTTP, "POST", e.URL("notify", wire.NewToken())))
	}
	for i, a := range append(probes, left) {
		if a.status != 404 || relaytest.ErrorCode(t, a.body) != "no_device" {
			t.Fatalf("response %d: %d %s; want 404 no_device", i, a.status, a.body)
		}
		if string(a.body) != string(left.body) || !sameHeaders(a.header, left.header) {
			t.Fatalf("404s differ:\n%v %s\n%v %s", a.header, a.body, left.header, left.body)
		}
	}
	wantRateLimited(t, send(t, e.HTTP, "POST", e.URL("notify", wire.NewToken())))
	if a := send(t, e.HTTP, "POST", e.URL("notify", known)); a.status != 200 || !strings.Contains(string(a.body), `"known"`) {
		t.Fatalf("connected device from the probing source: %d %s; want 200", a.status, a.body)
	}
	if a := send(t, second, "POST", e.URL("notify", wire.NewToken())); a.status != 404 {
		t.Fatalf("another source's miss: %d %s; want 404", a.status, a.body)
	}
	if n := metric(t, e, `relay_rate_limited_total{limit="miss"}`); n != 1 {
		t.Errorf("miss limit refusals: %v, want 1", n)
	}

	// Neither the metrics nor the log name a token or an address.
	resp, err := http.Get("http://" + e.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e.Stop()
	for _, text := range []string{string(b), e.Logs.String()} {
		for _, secret := range []string{known, gone, "127.0.0."} {
			if strings.Contains(text, secret) {
				t.Errorf("metrics or log hold %q", secret)
			}
		}
	}
}

// sameHeaders compares two responses' headers but for Date.
func sameHeaders(a, b http.Header) bool {
	a, b = a.Clone(), b.Clone()
	a.Del("Date")
	b.Del("Date")
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\n") != strings.Join(b[k], "\n") {
			return false
		}
	}
	return true
}
