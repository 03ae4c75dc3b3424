package httperr

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/pixelrelay/relay/router"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
)

func TestRetryAfterRoundsUp(t *testing.T) {
	// Not New: the table holds only the relay's own rows (TestAPIListsEveryRow).
	limited := &Error{Status: http.StatusTooManyRequests, Code: "test_limited", Message: "slow down", RetryAfter: 1}
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 1}, {time.Nanosecond, 1}, {999 * time.Millisecond, 1}, {time.Second, 1},
		{time.Second + time.Millisecond, 2}, {100 * time.Second, 100}, {1<<63 - 1, 86400},
	} {
		if e, got := Respond(RetryIn(limited, c.d), Internal); e != limited || got != c.want {
			t.Errorf("%v: %s, Retry-After %d; want %s, %d", c.d, e.Code, got, limited.Code, c.want)
		}
	}
	// Wrapped, it still answers from the table with its own Retry-After.
	if e, got := Respond(fmt.Errorf("context: %w", RetryIn(limited, 3*time.Second)), Internal); e != limited || got != 3 {
		t.Errorf("wrapped RetryIn: %s, Retry-After %d", e.Code, got)
	}
	if e := For(RetryIn(limited, time.Second)); e != limited {
		t.Errorf("a RetryIn maps to %v", e)
	}
	if e, got := Respond(limited, Internal); got != 1 {
		t.Errorf("bare %s: Retry-After %d, want the table's 1", e.Code, got)
	}
}

// TestEveryOutcomeHasARow: each router outcome, bare or wrapped, answers
// with its own row: its code, an error status, never internal; and no two
// rows of the table share a code unless they are one refusal (the two 405s).
func TestEveryOutcomeHasARow(t *testing.T) {
	for _, o := range router.Outcomes() {
		for _, err := range []error{o, fmt.Errorf("detail: %w", o)} {
			e, _ := Respond(err, Internal)
			if e == Internal || e.Code != o.Code() || e.Status < 400 {
				t.Errorf("%v: answered %d %s, want its own row under %s", err, e.Status, e.Code, o.Code())
			}
		}
	}
	if len(deliveryErrors) != len(router.Outcomes()) {
		t.Errorf("%d delivery rows for %d outcomes", len(deliveryErrors), len(router.Outcomes()))
	}
	statuses := map[string]int{}
	for _, e := range all {
		if s, ok := statuses[e.Code]; ok && s != e.Status {
			t.Errorf("code %s is answered both %d and %d", e.Code, s, e.Status)
		}
		statuses[e.Code] = e.Status
	}
}

// TestRefuserCountsByCode: each refusal, on either server, is one count
// under its code, and a detail changes the message, not the code.
func TestRefuserCountsByCode(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_total"}, []string{"outcome"})
	r := NewRefuser(vec)
	var ctx fasthttp.RequestCtx
	r.Refuse(&ctx, Detailed(NotFound, "not here"))
	if ctx.Response.StatusCode() != 404 || string(ctx.Response.Body()) != `{"error":"not here","code":"not_found"}` {
		t.Fatalf("fasthttp: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	w := httptest.NewRecorder()
	r.RefuseHTTP(w, fmt.Errorf("a cluster: %w", router.ErrUnavailable))
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" || w.Body.String() != `{"error":"the relay cannot reach its other nodes; retry shortly","code":"cluster_unavailable"}` {
		t.Fatalf("net/http: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	r.ServeError(&ctx, errors.New("unreadable"))
	if ctx.Response.StatusCode() != 400 {
		t.Fatalf("ServeError of an unknown error: %d, want 400", ctx.Response.StatusCode())
	}
	for code, want := range map[string]float64{"not_found": 1, "cluster_unavailable": 1, "bad_request": 1, "internal": 0} {
		var m dto.Metric
		vec.WithLabelValues(code).Write(&m)
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("%s counted %v times, want %v", code, got, want)
		}
	}
}

// TestAPIListsEveryRow: docs/API.md's table of refusals has a row for each
// of this table's, with its status and code (the delivery outcomes'
// included), and no row whose code is one of ours under another status.
func TestAPIListsEveryRow(t *testing.T) {
	doc, err := os.ReadFile("../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]map[int]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| (\\d{3}) \\| `([a-z_]+)` \\|").FindAllSubmatch(doc, -1) {
		status, _ := strconv.Atoi(string(m[1]))
		code := string(m[2])
		if rows[code] == nil {
			rows[code] = map[int]bool{}
		}
		rows[code][status] = true
	}
	for _, e := range all {
		if !rows[e.Code][e.Status] {
			t.Errorf("API.md has no row | %d | `%s` |", e.Status, e.Code)
		}
		if len(rows[e.Code]) > 1 {
			t.Errorf("API.md lists %s under %d statuses", e.Code, len(rows[e.Code]))
		}
	}
}
