package loadtest

// This file is the webhook load: a vegeta targeter that spreads realistic
// AWTRIX bodies over the swarm's tokens, and one attack at a constant rate
// with its live progress line.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Distributions of webhooks over devices.
const (
	DistUniform = "uniform" // every device alike
	DistZipf    = "zipf"    // a few devices get most (s = ZipfS)
	DistHot     = "hot"     // all to device 0
)

// ZipfS is the Zipf exponent: with s = 1.1 over 2,000 devices the top
// device gets ~13% of the webhooks and the top 1% of devices ~45%.
const ZipfS = 1.1

// DefaultBitmapShare is the fraction of webhooks that are full-frame
// bitmaps; the rest are notifications and apps.
const DefaultBitmapShare = 0.1

// targeter makes webhooks: POST https://ADDR/cloud?mode=MODE&token=TOKEN&lt=ID.
// It is safe for concurrent use (vegeta's workers call it at once).
type targeter struct {
	base        string             // "https://ADDR/cloud?mode="; static
	n           int                // devices; static
	token       func(i int) string // device i's current token
	nextID      func() uint64
	dist        string
	bitmapShare float64
	hdr         http.Header // shared, read-only (vegeta copies it)

	zipfMu sync.Mutex // guards zipf, which is not safe for concurrent use
	zipf   *rand.Zipf
	perm   []int // Zipf rank -> device, so the hot devices are spread; static
}

func newTargeter(addr string, n int, token func(int) string, nextID func() uint64, dist string, bitmapShare float64) (*targeter, error) {
	if n <= 0 {
		return nil, errors.New("loadtest: targeter needs devices")
	}
	t := &targeter{
		base:        "https://" + addr + "/cloud?mode=",
		n:           n,
		token:       token,
		nextID:      nextID,
		dist:        dist,
		bitmapShare: bitmapShare,
		hdr:         http.Header{"Content-Type": {"application/json"}},
	}
	switch dist {
	case DistUniform, DistHot:
	case DistZipf:
		r := rand.New(rand.NewPCG(uint64(n), 11))
		t.zipf = rand.NewZipf(r, ZipfS, 1, uint64(n-1))
		t.perm = r.Perm(n)
	default:
		return nil, fmt.Errorf("loadtest: distribution %q: want %s, %s or %s", dist, DistUniform, DistZipf, DistHot)
	}
	return t, nil
}

// device picks the target device.
func (t *targeter) device() int {
	switch t.dist {
	case DistHot:
		return 0
	case DistZipf:
		t.zipfMu.Lock()
		k := t.zipf.Uint64()
		t.zipfMu.Unlock()
		return t.perm[k]
	}
	return rand.IntN(t.n)
}

// body picks a realistic body.
func (t *targeter) body() body {
	if rand.Float64() < t.bitmapShare {
		return bitmapBodies[rand.IntN(len(bitmapBodies))]
	}
	return smallBodies[rand.IntN(len(smallBodies))]
}

// next is the vegeta.Targeter.
func (t *targeter) next(tgt *vegeta.Target) error {
	id := t.nextID()
	dev := t.device()
	b := t.body()
	tgt.Method = http.MethodPost
	tgt.URL = t.base + b.mode + "&token=" + t.token(dev) + "&lt=" + strconv.FormatUint(id, 10)
	tgt.Body = appendBody(make([]byte, 0, len(b.rest)+32), b, id, dev)
	tgt.Header = t.hdr
	return nil
}

// attackSpec is one constant-rate attack.
type attackSpec struct {
	name     string // vegeta's attack name: the series in plot.html
	addr     string // HOST:PORT, for warming the connections
	tls      *tls.Config
	rate     float64 // requests/s
	duration time.Duration
	timeout  time.Duration // per request; above the relay's ack timeout
	// expect is the latency the devices add (ack delay and jitter), which
	// sizes the connection pool.
	expect   time.Duration
	target   vegeta.Targeter
	progress io.Writer // live line; nil for none
}

// attackOutcome is what one attack measured.
type attackOutcome struct {
	metrics vegeta.Metrics   // closed
	results []vegeta.Result  // bodies and headers dropped
	ok      uint64           // 2xx
	errs    uint64           // anything else, transport errors included
	samples map[string]int64 // first occurrences of each error text
	conns   int              // the connection pool
}

// Generator limits.
//
// A webhook sender keeps its connections (HTTP/1.1 keep-alive, one request
// at a time each): the pool is sized for the rate times the expected
// latency, with headroom, and opened before the attack. Without that,
// vegeta opens a connection per new worker at the start, and a few hundred
// concurrent TLS handshakes on a small machine make the first seconds
// measure the handshakes, then feed on themselves. A pool that turns out
// too small shows as latency (requests wait for a connection inside the
// timed request), never as a hidden backlog.
//
// Workers are goroutines, not connections; their cap only bounds a
// stalled target's cost. A worker is timed from when it takes the tick, so
// there are always far more workers than connections: the wait for a
// connection is inside the measured latency.
const (
	minConns       = 32
	maxConns       = 2048
	connLatency    = 25 * time.Millisecond // assumed per request besides the devices' delay
	connHeadroom   = 2
	maxWorkers     = 8192
	warmConcurrent = 64 // handshakes at once while warming
	warmTimeout    = 30 * time.Second
)

// poolSize is the number of connections for rate at the expected latency.
func poolSize(rate float64, expect time.Duration) int {
	n := rate * (expect + connLatency).Seconds() * connHeadroom
	return int(min(max(n, minConns), maxConns))
}

// runAttack opens the connections, runs spec to its end (or ctx's) and
// collects every result.
func runAttack(ctx context.Context, spec attackSpec) *attackOutcome {
	conns := poolSize(spec.rate, spec.expect)
	tr := &http.Transport{
		TLSClientConfig:     spec.tls.Clone(),
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: spec.timeout}
	warm(ctx, client, "https://"+spec.addr+"/cloud", conns)
	atk := vegeta.NewAttacker(
		vegeta.Client(client),
		vegeta.Workers(uint64(conns)),
		vegeta.MaxWorkers(maxWorkers),
		vegeta.MaxBody(1024),
	)
	pace := vegeta.Rate{Freq: max(int(math.Round(spec.rate)), 1), Per: time.Second}
	res := atk.Attack(spec.target, pace, spec.duration, spec.name)

	out := &attackOutcome{samples: map[string]int64{}, conns: conns}
	out.results = make([]vegeta.Result, 0, int(spec.rate*spec.duration.Seconds())+16)
	var p *Progress
	if spec.progress != nil {
		p = NewProgress(spec.progress, isTTY(spec.progress))
		defer p.Done()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	start := time.Now()
	var lastN uint64
	lastT := start
	for {
		select {
		case r, ok := <-res:
			if !ok {
				out.metrics.Close()
				return out
			}
			out.add(r)
		case now := <-tick.C:
			rate := float64(out.metrics.Requests-lastN) / now.Sub(lastT).Seconds()
			lastN, lastT = out.metrics.Requests, now
			if p != nil {
				m := &out.metrics
				p.Update(now.Sub(start), m.Requests, rate, millis(m.Latencies.Quantile(0.5)), millis(m.Latencies.Quantile(0.99)), out.errs)
			}
		}
	}
}

// warm opens n keep-alive connections to url before the attack. It holds
// every response open until all are in, so that each request needs a
// connection of its own, and uses a GET, which the relay refuses (405)
// without touching a device: nothing to account for.
func warm(ctx context.Context, c *http.Client, url string, n int) {
	ctx, cancel := context.WithTimeout(ctx, warmTimeout)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // guards bodies
		bodies []io.ReadCloser
	)
	sem := make(chan struct{}, warmConcurrent)
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return
			}
			resp, err := c.Do(req)
			if err != nil {
				return
			}
			mu.Lock()
			bodies = append(bodies, resp.Body)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, b := range bodies {
		io.Copy(io.Discard, b)
		b.Close()
	}
}

func (o *attackOutcome) add(r *vegeta.Result) {
	o.metrics.Add(r)
	if r.Code >= 200 && r.Code < 300 {
		o.ok++
	} else {
		o.errs++
		if len(o.samples) < 8 || o.samples[r.Error] > 0 {
			o.samples[r.Error]++
		}
	}
	r.Body, r.Headers = nil, nil
	o.results = append(o.results, *r)
}

// latencyMS converts closed vegeta metrics.
func latencyMS(m *vegeta.Metrics) LatencyMS {
	return LatencyMS{
		P50:  millis(m.Latencies.P50),
		P90:  millis(m.Latencies.P90),
		P99:  millis(m.Latencies.P99),
		Max:  millis(m.Latencies.Max),
		Mean: millis(m.Latencies.Mean),
	}
}

// throughput is 2xx answers per second over the attack and its wait.
func (o *attackOutcome) throughput() float64 {
	if d := (o.metrics.Duration + o.metrics.Wait).Seconds(); d > 0 {
		return float64(o.ok) / d
	}
	return 0
}

// errorRate is the fraction of requests not answered 2xx.
func (o *attackOutcome) errorRate() float64 {
	if o.metrics.Requests == 0 {
		return 0
	}
	return float64(o.errs) / float64(o.metrics.Requests)
}

// isTTY reports whether w is a terminal, for the progress line.
func isTTY(w io.Writer) bool {
	if l, ok := w.(*lockedWriter); ok {
		w = l.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
