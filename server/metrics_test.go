package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/quic-go/quic-go/http3"
)

// TestMetricsExposition parses /metrics of a clustered node that has seen
// traffic as Prometheus does: it must parse, every family must say its TYPE
// and a HELP, counters end in _total and measured quantities name their
// unit; the build is there; a device's own 4xx/5xx is not "delivered".
func TestMetricsExposition(t *testing.T) {
	_, nodes := cluster(t, 2, nil)
	e := nodes[0]
	tok := wire.NewToken()
	c, _ := login(t, e, tok)
	for _, status := range []uint16{200, 503} {
		done := answer(c, wire.Reply{Status: status, Body: []byte(`{}`)}.Append(nil))
		nodes[1].Post(t, "notify", tok, `{}`)
		<-done
	}
	done := answer(c, wire.Reply{Status: 201, Body: []byte(`{}`)}.Append(nil))
	e.Post(t, "notify", tok, `{}`)
	<-done

	resp, err := http.Get("http://" + e.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	units := []string{"_seconds", "_bytes", "_total", "_info", "_count", "_ratio", "_connected", "_keys", "_threads", "_goroutines", "_objects", "_fds", "_gomaxprocs"}
	for name, f := range families {
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
		if f.Type == nil {
			t.Errorf("%s has no TYPE", name)
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			if !strings.HasSuffix(name, "_total") {
				t.Errorf("counter %s does not end in _total", name)
			}
		case dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY:
			if !strings.HasSuffix(name, "_seconds") && !strings.HasSuffix(name, "_bytes") {
				t.Errorf("%s %s names no unit", f.GetType(), name)
			}
		case dto.MetricType_GAUGE:
			if strings.HasSuffix(name, "_total") {
				t.Errorf("gauge %s ends in _total", name)
			}
		}
		if strings.HasPrefix(name, "relay_") && !hasAny(name, units) {
			t.Errorf("%s: no unit or kind in the name", name)
		}
	}
	value := func(name, label, want string) float64 {
		for _, m := range families[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == want {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	if v := value("relay_cluster_served_total", "op", "deliver"); v != 2 {
		t.Errorf("relay_cluster_served_total{op=deliver} = %v, want 2", v)
	}
	if d, r := value("relay_webhooks_total", "outcome", "delivered"), value("relay_webhooks_total", "outcome", "device_error"); d != 1 || r != 0 {
		t.Errorf("on the holder: delivered %v, device_error %v; want 1 and 0 (its own caller got 201)", d, r)
	}
	// The other node's callers got the device's 200 and 503.
	if d, r := metric(t, nodes[1], `relay_webhooks_total{outcome="delivered"}`), metric(t, nodes[1], `relay_webhooks_total{outcome="device_error"}`); d != 1 || r != 1 {
		t.Errorf("on the other node: delivered %v, device_error %v; want 1 and 1", d, r)
	}
	b := families["relay_build_info"]
	if b == nil || len(b.GetMetric()) != 1 || b.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("relay_build_info: %v", b)
	}
}

// TestRefusalsCount: every refusal the relay answers counts in
// relay_webhooks_total by its code, whichever path it was on and over
// HTTPS or HTTP/3: not_found for a path other than /cloud (API.md's table),
// origin_not_allowed and bad_request at /connect, as /cloud's own refusals
// do.
func TestRefusalsCount(t *testing.T) {
	e := relaytest.Start(t, nil)
	h3 := &http3.Transport{TLSClientConfig: e.TLS.Clone()}
	defer h3.Close()
	clients := map[string]*http.Client{"HTTPS": e.HTTP, "HTTP/3": {Transport: h3}}
	count := func(code string) float64 { return metric(t, e, `relay_webhooks_total{outcome="`+code+`"}`) }
	for name, client := range clients {
		notFound, origin, badRequest, missing := count("not_found"), count("origin_not_allowed"), count("bad_request"), count("mode_missing")
		for _, path := range []string{"/nope", "/api/notify", "/cloud/"} {
			if status, code := get(t, client, "https://"+e.Addr+path, nil); status != 404 || code != "not_found" {
				t.Errorf("%s GET %s: %d %s, want 404 not_found", name, path, status, code)
			}
		}
		if status, code := get(t, client, "https://"+e.Addr+"/cloud", nil); status != 400 || code != "mode_missing" {
			t.Errorf("%s GET /cloud: %d %s", name, status, code)
		}
		if status, code := get(t, client, "https://"+e.Addr+server.ConnectPath, http.Header{"Origin": {"https://elsewhere.example"}}); status != 403 || code != "origin_not_allowed" {
			t.Errorf("%s GET /connect from elsewhere: %d %s", name, status, code)
		}
		if got := count("not_found") - notFound; got != 3 {
			t.Errorf("%s: relay_webhooks_total{outcome=\"not_found\"} moved by %v for 3 unknown paths", name, got)
		}
		if got := count("mode_missing") - missing; got != 1 {
			t.Errorf("%s: mode_missing moved by %v, want 1", name, got)
		}
		if got := count("origin_not_allowed") - origin; got != 1 {
			t.Errorf("%s: origin_not_allowed moved by %v, want 1", name, got)
		}
		if name == "HTTPS" {
			// A GET of /connect that is no WebSocket upgrade.
			if status, code := get(t, client, "https://"+e.Addr+server.ConnectPath, nil); status != 400 || code != "bad_request" {
				t.Errorf("GET /connect without an upgrade: %d %s", status, code)
			}
			if got := count("bad_request") - badRequest; got != 1 {
				t.Errorf("bad_request moved by %v, want 1", got)
			}
		}
	}
}

// get sends a GET and returns its status and the refusal's code.
func get(t *testing.T, client *http.Client, url string, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, relaytest.ErrorCode(t, b)
}

func hasAny(s string, suffixes []string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}
