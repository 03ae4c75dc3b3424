package loadtest

// This file is the webhook load: a vegeta targeter that spreads realistic
// AWTRIX bodies over the swarm's tokens (and a cluster's nodes), and one
// attack at a constant rate with its live progress line.

import (
	"bytes"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// frontends are the addresses webhooks go to: one relay, or a cluster's
// nodes. The generator sends only to the nodes marked ready, as a balancer
// that health-checks /readyz would, and counts per node the webhooks it
// made and those not answered yet.
type frontends struct {
	addrs  []string       // HOST:PORT per node; static
	bases  []string       // "https://ADDR/cloud?mode=" per node; static
	byHost map[string]int // HOST:PORT -> node; static

	ready   atomic.Pointer[[]int] // the nodes webhooks go to; replaced whole
	readyMu sync.Mutex            // serializes writers of ready
	pending []atomic.Int64        // webhooks made for node i and not answered yet
	sent    []atomic.Uint64       // webhooks made for node i
}

func newFrontends(addrs ...string) *frontends {
	f := &frontends{addrs: addrs, byHost: map[string]int{},
		pending: make([]atomic.Int64, len(addrs)), sent: make([]atomic.Uint64, len(addrs))}
	all := make([]int, len(addrs))
	for i, a := range addrs {
		f.bases = append(f.bases, "https://"+a+"/cloud?mode=")
		f.byHost[a] = i
		all[i] = i
	}
	f.ready.Store(&all)
	return f
}

// pick is a ready node, uniformly; the first node if none is.
func (f *frontends) pick() int {
	r := *f.ready.Load()
	switch len(r) {
	case 0:
		return 0
	case 1:
		return r[0]
	}
	return r[rand.IntN(len(r))]
}

// setReady adds node n to the ready nodes or takes it out.
func (f *frontends) setReady(n int, up bool) {
	f.readyMu.Lock()
	defer f.readyMu.Unlock()
	var r []int
	for i := range f.addrs {
		if i == n && up || i != n && slices.Contains(*f.ready.Load(), i) {
			r = append(r, i)
		}
	}
	f.ready.Store(&r)
}

// settle waits until every webhook made for node n has its answer, at most
// max; it reports whether none is left.
func (f *frontends) settle(ctx context.Context, n int, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for f.pending[n].Load() > 0 {
		if time.Now().After(deadline) || !sleepCtx(ctx, 5*time.Millisecond) {
			return false
		}
	}
	return true
}

// roundTripper counts a node's webhook answered when its round trip ends.
// The targeter counts it made, so that a webhook between the two is never
// missed.
type roundTripper struct {
	rt http.RoundTripper
	fe *frontends
}

func (p roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.rt.RoundTrip(req)
	if n, ok := p.fe.byHost[req.URL.Host]; ok {
		p.fe.pending[n].Add(-1)
	}
	return resp, err
}

// targeter makes webhooks: POST https://ADDR/cloud?mode=MODE&token=TOKEN&lt=ID.
// It is safe for concurrent use (vegeta's workers call it at once).
type targeter struct {
	fe          *frontends         // static
	n           int                // devices; static
	token       func(i int) string // device i's current token
	nextID      func() uint64
	dist        string
	bitmapShare float64
	hdr         http.Header // shared, read-only (vegeta copies it)

	// In a cluster: where(i) is the node of device i's session (-1
	// between sessions), and routes keeps where each webhook went.
	where  func(i int) int
	routes *routing
	// devs, if set, keeps each webhook's device (index + 1): in a cluster,
	// and to split the figures of a swarm on several transports.
	devs *idTable
	// mqtt, if set, says which devices are MQTT clocks, which get only
	// the bodies AWTRIX 3 takes over MQTT.
	mqtt func(i int) bool

	zipfMu sync.Mutex // guards zipf, which is not safe for concurrent use
	zipf   *rand.Zipf
	perm   []int // Zipf rank -> device, so the hot devices are spread; static
}

func newTargeter(fe *frontends, n int, token func(int) string, nextID func() uint64, dist string, bitmapShare float64) (*targeter, error) {
	if n <= 0 {
		return nil, errors.New("loadtest: targeter needs devices")
	}
	t := &targeter{
		fe:          fe,
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

// body picks a realistic body for device dev.
func (t *targeter) body(dev int) body {
	small, bitmaps := smallBodies, bitmapBodies
	if t.mqtt != nil && t.mqtt(dev) {
		small, bitmaps = mqttSmallBodies, mqttBitmapBodies
	}
	if rand.Float64() < t.bitmapShare {
		return bitmaps[rand.IntN(len(bitmaps))]
	}
	return small[rand.IntN(len(small))]
}

// routing keeps, per message id of a cluster's webhook, the node it went
// to, its device, and the node of that device's session when it was sent.
type routing struct {
	nodes idTable // route(webhook node, device's node)
	devs  idTable // device index + 1 (targeter.devs)
}

// get returns id's webhook node, device and device node (-1: between
// sessions); ok is false for an id never recorded.
func (r *routing) get(id uint64) (webhook, dev, devNode int, ok bool) {
	webhook, devNode, ok = unroute(r.nodes.get(id))
	return webhook, int(r.devs.get(id)) - 1, devNode, ok
}

// route packs a webhook's node and its device's node when it was sent
// (-1: between sessions) into an idTable word; 0 is "not recorded".
func route(webhook, device int) uint32 { return uint32(webhook+1)<<16 | uint32(device+1)&0xffff }

// unroute undoes route; ok is false for a word never set.
func unroute(v uint32) (webhook, device int, ok bool) {
	return int(v>>16) - 1, int(v&0xffff) - 1, v != 0
}

// next is the vegeta.Targeter.
func (t *targeter) next(tgt *vegeta.Target) error {
	id := t.nextID()
	dev := t.device()
	b := t.body(dev)
	node := t.fe.pick()
	t.fe.sent[node].Add(1)
	t.fe.pending[node].Add(1)
	if t.devs != nil {
		t.devs.set(id, uint32(dev)+1)
	}
	if t.routes != nil {
		t.routes.nodes.set(id, route(node, t.where(dev)))
	}
	tgt.Method = http.MethodPost
	tgt.URL = t.fe.bases[node] + b.mode + "&token=" + t.token(dev) + "&lt=" + strconv.FormatUint(id, 10)
	tgt.Body = appendBody(make([]byte, 0, len(b.rest)+32), b, id, dev)
	tgt.Header = t.hdr
	return nil
}

// attackSpec is one constant-rate attack.
type attackSpec struct {
	name     string     // vegeta's attack name: the series in plot.html
	fe       *frontends // where target sends webhooks: warmed, and answers counted
	tls      *tls.Config
	rate     float64 // requests/s
	duration time.Duration
	timeout  time.Duration // per request; above the relay's ack timeout
	// expect is the latency the devices add (ack delay and jitter), which
	// sizes the connection pool.
	expect   time.Duration
	target   vegeta.Targeter
	progress io.Writer // live line; nil for none
	// started, if set, is called when the attack begins, after warming.
	started func(time.Time)
}

// attackOutcome is what one attack measured.
type attackOutcome struct {
	metrics vegeta.Metrics   // closed
	results []vegeta.Result  // bodies and headers dropped
	ok      uint64           // 2xx
	errs    uint64           // anything else, transport errors included
	samples map[string]int64 // first occurrences of each error text
	conns   int              // the connection pool
	// failed has every answer other than 2xx: when it was sent, and its
	// status and code (failureKey).
	failed []failure
	keys   map[string]string // interned failure keys
}

// failure is one webhook not answered 2xx.
type failure struct {
	at  time.Time     // sent
	key string        // "404 no_device", "0 timeout": failureKey
	lat time.Duration // until answered
	id  uint64        // its message id
	ok  bool          // id is known
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

// paceOf is vegeta's pace for rate requests/s: per second for a whole
// rate, else one request every 1/rate s, so that a fleet's 33.3/s or
// 0.083/s is not rounded to 33 or 1.
func paceOf(rate float64) vegeta.Rate {
	if rate >= 1 && rate == math.Trunc(rate) {
		return vegeta.Rate{Freq: int(rate), Per: time.Second}
	}
	if rate <= 0 {
		return vegeta.Rate{Freq: 1, Per: time.Second}
	}
	return vegeta.Rate{Freq: 1, Per: time.Duration(float64(time.Second) / rate)}
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
		// Below the relay's --http-idle-timeout (60 s): a client that
		// keeps a connection idle exactly as long as the server can send
		// a POST on it just as the server closes it, and lose it (a soak
		// did: 3 of 360,000, EOF or broken pipe, on connections idle for
		// a minute that a burst reached deep into the pool).
		IdleConnTimeout:    30 * time.Second,
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: roundTripper{tr, spec.fe}, Timeout: spec.timeout}
	// Warming goes round the counting, straight to the shared pool.
	warmer := &http.Client{Transport: tr, Timeout: spec.timeout}
	per := (conns + len(spec.fe.addrs) - 1) / len(spec.fe.addrs)
	for _, a := range spec.fe.addrs {
		warm(ctx, warmer, "https://"+a+"/cloud", per)
	}
	atk := vegeta.NewAttacker(
		vegeta.Client(client),
		vegeta.Workers(uint64(conns)),
		vegeta.MaxWorkers(maxWorkers),
		vegeta.MaxBody(1024),
	)
	pace := paceOf(spec.rate)
	if spec.started != nil {
		spec.started(time.Now())
	}
	res := atk.Attack(spec.target, pace, spec.duration, spec.name)

	out := &attackOutcome{samples: map[string]int64{}, conns: conns, keys: map[string]string{}}
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
		k := failureKey(r)
		if ik, ok := o.keys[k]; ok {
			k = ik
		} else {
			o.keys[k] = k
		}
		id, ok := idFromURL(r.URL)
		o.failed = append(o.failed, failure{at: r.Timestamp, key: k, lat: r.Latency, id: id, ok: ok})
	}
	r.Body, r.Headers = nil, nil
	o.results = append(o.results, *r)
}

var codeKey = []byte(`"code":"`)

// failureKey names an answer other than 2xx by its status and the relay's
// error code, "503 draining"; a transport error (no answer) by its kind,
// "0 timeout".
func failureKey(r *vegeta.Result) string {
	status := strconv.Itoa(int(r.Code))
	if r.Code == 0 {
		e := r.Error
		switch {
		case strings.Contains(e, "Timeout") || strings.Contains(e, "timeout") || strings.Contains(e, "deadline exceeded"):
			return "0 timeout"
		case strings.Contains(e, "connection refused"):
			return "0 refused"
		case strings.Contains(e, "connection reset"):
			return "0 reset"
		case strings.Contains(e, "EOF"):
			return "0 eof"
		}
		return "0 error"
	}
	if i := bytes.Index(r.Body, codeKey); i >= 0 {
		rest := r.Body[i+len(codeKey):]
		if j := bytes.IndexByte(rest, '"'); j > 0 && j <= 64 {
			return status + " " + string(rest[:j])
		}
	}
	return status
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
