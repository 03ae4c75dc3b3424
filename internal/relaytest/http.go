package relaytest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// URL is the webhook URL for mode and token; an empty one is left out.
func (r *Relay) URL(mode, token string) string {
	q := url.Values{}
	if mode != "" {
		q.Set("mode", mode)
	}
	if token != "" {
		q.Set("token", token)
	}
	return "https://" + r.Addr + "/cloud?" + q.Encode()
}

// Post sends a webhook with a JSON body and returns status and body.
func (r *Relay) Post(tb testing.TB, mode, token, body string) (int, []byte) {
	tb.Helper()
	return r.Do(tb, http.MethodPost, r.URL(mode, token), body, http.Header{"Content-Type": {"application/json"}})
}

// Do sends any request with r.HTTP and returns status and body.
func (r *Relay) Do(tb testing.TB, method, url, body string, hdr http.Header) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := r.HTTP.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// ErrorCode decodes the relay's error body {"error","code"}, fails the test
// unless both fields are set, and returns the code.
func ErrorCode(tb testing.TB, body []byte) string {
	tb.Helper()
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || e.Code == "" {
		tb.Fatalf("error body %q is not {\"error\",\"code\"}: %v", body, err)
	}
	return e.Code
}

// Metric reads one series, by its full name with labels as /metrics writes
// it, from the admin listener; the test fails if it is not there.
func (r *Relay) Metric(tb testing.TB, name string) float64 {
	tb.Helper()
	resp, err := http.Get("http://" + r.AdminAddr().String() + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("/metrics: %s: %v", line, err)
			}
			return f
		}
	}
	tb.Fatalf("/metrics has no %s", name)
	return 0
}
