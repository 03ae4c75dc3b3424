package loadtest

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pixelrelay/relay/wire"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// TestBodies: every body is valid JSON for a real mode, in its size range
// with a realistic accounting key, and the key comes first.
func TestBodies(t *testing.T) {
	const id, dev = 12_345_678, 9_999 // a long run, a large swarm
	check := func(set string, bs []body, lo, hi int) {
		t.Helper()
		if len(bs) < 4 {
			t.Fatalf("%s: only %d bodies", set, len(bs))
		}
		for i, b := range bs {
			if !wire.ValidMode([]byte(b.mode)) {
				t.Errorf("%s %d: mode %q", set, i, b.mode)
			}
			for _, probe := range [][2]int{{0, 0}, {id, dev}} {
				j := appendBody(nil, b, uint64(probe[0]), probe[1])
				if !json.Valid(j) {
					t.Errorf("%s %d: not JSON: %s", set, i, j)
				}
				if probe[0] == id && (len(j) < lo || len(j) > hi) {
					t.Errorf("%s %d (%s): %d bytes, want %d-%d", set, i, b.mode, len(j), lo, hi)
				}
				gotID, gotDev, ok := parseLT(j)
				if !ok || gotID != uint64(probe[0]) || gotDev != uint64(probe[1]) {
					t.Errorf("%s %d: parseLT = %d, %d, %v; want %v", set, i, gotID, gotDev, ok, probe)
				}
				var m map[string]json.RawMessage
				if err := json.Unmarshal(j, &m); err != nil || len(m) < 2 {
					t.Errorf("%s %d: %v, %d keys", set, i, err, len(m))
				}
			}
		}
	}
	check("small", smallBodies, smallMin, smallMax)
	check("bitmap", bitmapBodies, bitmapMin, bitmapMax)
}

func TestParseLT(t *testing.T) {
	for body, want := range map[string][3]uint64{ // id, dev, ok
		`{"lt":[7,3],"text":"x"}`:         {7, 3, 1},
		`{"lt":[0,0]}`:                    {0, 0, 1},
		`{"text":"x","lt":[42,1]}`:        {42, 1, 1}, // found anywhere, first is just faster
		`{"lt":[7 ,3]}`:                   {0, 0, 0},
		`{"lt":[7]}`:                      {0, 0, 0},
		`{"lt":[,3]}`:                     {0, 0, 0},
		`{"lt":[7,3`:                      {0, 0, 0},
		`{"text":"no key"}`:               {0, 0, 0},
		`{"lt":[99999999999999999999,1]}`: {0, 0, 0}, // 20 digits: not ours
	} {
		id, dev, ok := parseLT([]byte(body))
		if ok != (want[2] == 1) || (ok && (id != want[0] || dev != want[1])) {
			t.Errorf("parseLT(%s) = %d, %d, %v; want %v", body, id, dev, ok, want)
		}
	}
}

// targets draws n targets from tg on several goroutines, as vegeta's
// workers do.
func targets(t *testing.T, tg *targeter, n int) []vegeta.Target {
	t.Helper()
	out := make([]vegeta.Target, n)
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := tg.next(&out[i]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return out
}

func newTestTargeter(t *testing.T, devices int, dist string) (*targeter, []string) {
	t.Helper()
	tokens := make([]string, devices)
	for i := range tokens {
		tokens[i] = wire.NewToken()
	}
	var ids atomic.Uint64
	tg, err := newTargeter(newFrontends("127.0.0.1:8443"), devices, func(i int) string { return tokens[i] },
		func() uint64 { return ids.Add(1) - 1 }, dist, DefaultBitmapShare)
	if err != nil {
		t.Fatal(err)
	}
	return tg, tokens
}

// TestTargeter: unique ids, URL and body agree on id and device, the token
// is the device's, the bodies are JSON and the bitmap share holds.
func TestTargeter(t *testing.T) {
	const devices, n = 50, 20000
	tg, tokens := newTestTargeter(t, devices, DistUniform)
	seen := make(map[uint64]bool, n)
	bitmaps := 0
	for _, tgt := range targets(t, tg, n) {
		if tgt.Method != "POST" || tgt.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("method %s, header %v", tgt.Method, tgt.Header)
		}
		u, err := url.Parse(tgt.URL)
		if err != nil || u.Scheme != "https" || u.Host != "127.0.0.1:8443" || u.Path != "/cloud" {
			t.Fatalf("URL %s: %v", tgt.URL, err)
		}
		q := u.Query()
		id, err := strconv.ParseUint(q.Get("lt"), 10, 64)
		if err != nil {
			t.Fatalf("URL %s: no id", tgt.URL)
		}
		if urlID, ok := idFromURL(tgt.URL); !ok || urlID != id {
			t.Fatalf("idFromURL(%s) = %d, %v", tgt.URL, urlID, ok)
		}
		if seen[id] {
			t.Fatalf("id %d twice", id)
		}
		seen[id] = true
		bodyID, dev, ok := parseLT(tgt.Body)
		if !ok || bodyID != id || dev >= devices {
			t.Fatalf("body %s: id %d dev %d, URL id %d", tgt.Body, bodyID, dev, id)
		}
		if q.Get("token") != tokens[dev] || !wire.ValidMode([]byte(q.Get("mode"))) {
			t.Fatalf("URL %s: token or mode wrong for device %d", tgt.URL, dev)
		}
		if !json.Valid(tgt.Body) {
			t.Fatalf("body not JSON: %s", tgt.Body)
		}
		if len(tgt.Body) >= bitmapMin {
			bitmaps++
		}
	}
	for id := range uint64(n) {
		if !seen[id] {
			t.Fatalf("id %d never issued: ids are not dense", id)
		}
	}
	// 10% bitmaps: 2000 of 20000, binomial sd ~42.
	if share := float64(bitmaps) / n; share < 0.085 || share > 0.115 {
		t.Errorf("bitmap share %.3f, want about %.2f", share, DefaultBitmapShare)
	}
}

// counts returns how many targets went to each device.
func counts(t *testing.T, ts []vegeta.Target, devices int) []int {
	t.Helper()
	c := make([]int, devices)
	for _, tgt := range ts {
		_, dev, ok := parseLT(tgt.Body)
		if !ok {
			t.Fatalf("body %s", tgt.Body)
		}
		c[dev]++
	}
	return c
}

func TestTargeterDistributions(t *testing.T) {
	const devices, n = 100, 50000
	t.Run("uniform", func(t *testing.T) {
		tg, _ := newTestTargeter(t, devices, DistUniform)
		c := counts(t, targets(t, tg, n), devices)
		// 500 expected each, sd ~22: every device within 5 sd.
		lo, hi := slices.Min(c), slices.Max(c)
		if lo < 390 || hi > 610 {
			t.Errorf("uniform: per-device counts %d..%d, want about 500", lo, hi)
		}
	})
	t.Run("zipf", func(t *testing.T) {
		tg, _ := newTestTargeter(t, devices, DistZipf)
		c := counts(t, targets(t, tg, n), devices)
		sorted := slices.Sorted(slices.Values(c))
		slices.Reverse(sorted)
		// Zipf s=1.1 over 100 ranks: the top device gets ~24%, the
		// second about half of that, the top 10 ~60%.
		top, second := float64(sorted[0])/n, float64(sorted[1])/n
		top10 := 0
		for _, v := range sorted[:10] {
			top10 += v
		}
		if top < 0.18 || top > 0.30 || second > 0.7*top || float64(top10)/n < 0.5 {
			t.Errorf("zipf: top %.3f, second %.3f, top 10 %.3f", top, second, float64(top10)/n)
		}
		// The hot devices are spread over the swarm, not its first indexes.
		if hot := slices.Index(c, sorted[0]); hot == 0 && c[1] == sorted[1] {
			t.Errorf("zipf: hottest devices are indexes 0 and 1; want them permuted")
		}
	})
	t.Run("hot", func(t *testing.T) {
		tg, _ := newTestTargeter(t, devices, DistHot)
		c := counts(t, targets(t, tg, 1000), devices)
		if c[0] != 1000 {
			t.Errorf("hot: device 0 got %d of 1000", c[0])
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if _, err := newTargeter(newFrontends("h:1"), 1, nil, nil, "pareto", 0); err == nil {
			t.Error("unknown distribution accepted")
		}
	})
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		n     int
		share float64
		want  int
	}{{200, 0, 0}, {200, 0.1, 20}, {200, 0.5, 100}, {200, 1, 200}, {7, 0.3, 2}} {
		got, run, longest := 0, 0, 0
		for i := range tc.n {
			if spread(i, shareOf(tc.n, tc.share), tc.n) {
				got++
				run = 0
			} else if run++; run > longest {
				longest = run
			}
		}
		if got != tc.want {
			t.Errorf("%d devices at %.1f: %d WebTransport, want %d", tc.n, tc.share, got, tc.want)
		}
		// Spread, not bunched: no QUIC run longer than 1/share.
		if tc.share > 0 && tc.share < 1 && float64(longest) > 1/tc.share {
			t.Errorf("%d devices at %.1f: %d QUIC devices in a row", tc.n, tc.share, longest)
		}
	}
}

func TestPoolSize(t *testing.T) {
	if n := poolSize(1, 0); n != minConns {
		t.Errorf("tiny rate: %d connections, want %d", n, minConns)
	}
	if n := poolSize(1e6, 0); n != maxConns {
		t.Errorf("huge rate: %d connections, want %d", n, maxConns)
	}
	// slow devices at 2000/s: 2000 * (300+25) ms * 2 = 1300.
	if a, b := poolSize(2000, 0), poolSize(2000, 300e6); a >= b {
		t.Errorf("slow devices get no more connections: %d vs %d", a, b)
	}
}

// TestSwarmTransportMix: the WebTransport, WebSocket and MQTT shares are
// of all devices, never overlap, and the rest is raw QUIC; only devices
// on QUIC or WebTransport get UDP sockets.
func TestSwarmTransportMix(t *testing.T) {
	for _, tc := range []struct {
		wt, ws, mq             float64
		wantWT, wantWS, wantMQ int
		want                   []string
	}{
		{0.3, 0.2, 0, 30, 20, 0, []string{TransportQUIC, TransportWebTransport, TransportWebSocket}},
		{0, 1, 0, 0, 100, 0, []string{TransportWebSocket}},
		{0.1, 0, 0, 10, 0, 0, []string{TransportQUIC, TransportWebTransport}},
		{0.5, 0.5, 0, 50, 50, 0, []string{TransportWebTransport, TransportWebSocket}},
		{0.1, 0.2, 0.3, 10, 20, 30, []string{TransportQUIC, TransportWebTransport, TransportWebSocket, TransportMQTT}},
		{0, 0, 1, 0, 0, 100, []string{TransportMQTT}},
		{0, 0.5, 0.5, 0, 50, 50, []string{TransportWebSocket, TransportMQTT}},
	} {
		sw, err := NewSwarm(SwarmConfig{Addr: "127.0.0.1:1", MQTTAddr: "127.0.0.1:2", Devices: 100, WebTransportShare: tc.wt, WebSocketShare: tc.ws, MQTTShare: tc.mq})
		if err != nil {
			t.Fatal(err)
		}
		overlap := 0
		for _, d := range sw.devs {
			if n := btoi(d.wt) + btoi(d.ws) + btoi(d.mq); n > 1 {
				overlap++
			}
			if (d.udp == nil) != d.mq || (d.tokens == nil) != d.mq {
				t.Errorf("device %d (%s): UDP socket %v, token store %v", d.idx, d.transport(), d.udp != nil, d.tokens != nil)
			}
		}
		got, gotWS, gotMQ := sw.WebTransportDevices(), sw.WebSocketDevices(), sw.MQTTDevices()
		if got != tc.wantWT || gotWS != tc.wantWS || gotMQ != tc.wantMQ || overlap != 0 {
			t.Errorf("shares %.1f/%.1f/%.1f: %d WebTransport, %d WebSocket, %d MQTT, %d on two; want %d, %d, %d, 0",
				tc.wt, tc.ws, tc.mq, got, gotWS, gotMQ, overlap, tc.wantWT, tc.wantWS, tc.wantMQ)
		}
		if ts := sw.Transports(); !slices.Equal(ts, tc.want) || !slices.Equal(transportsOf(mix{tc.wt, tc.ws, tc.mq}), tc.want) {
			t.Errorf("shares %.1f/%.1f/%.1f: transports %q (of the mix %q), want %q", tc.wt, tc.ws, tc.mq, ts, transportsOf(mix{tc.wt, tc.ws, tc.mq}), tc.want)
		}
		sw.Close()
	}
	if _, err := NewSwarm(SwarmConfig{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, MQTTAddr: "127.0.0.1:3", Devices: 2, MQTTShare: 1}); err == nil {
		t.Error("MQTT clocks on a cluster of 2 with one MQTT address: no error")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
