package loadtest

// This file splits a run's figures by the devices' transport, for swarms
// with devices on more than one (--webtransport-share, --websocket-share).

import (
	"slices"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The devices' transports, as Summary.Transport and TransportStats name them.
const (
	TransportQUIC         = "quic"
	TransportWebTransport = "webtransport"
	TransportWebSocket    = "websocket"
	TransportMixed        = "mixed"
)

// transportName is the swarm's transport, or mixed.
func transportName(sw *Swarm) string {
	if ts := sw.Transports(); len(ts) == 1 {
		return ts[0]
	}
	return TransportMixed
}

// TransportStats are one transport's part of a run whose devices use
// several: how its devices connected, and the webhooks sent to them.
type TransportStats struct {
	Transport    string  `json:"transport"`
	Devices      int     `json:"devices"`
	Connected    int     `json:"connected"` // logged in while the swarm connected
	ConnectP50MS float64 `json:"connect_p50_ms"`
	ConnectP99MS float64 `json:"connect_p99_ms"`
	// Webhooks sent to this transport's devices (of the results given:
	// the capacity scenario's highest held step), OK those answered 2xx.
	Webhooks uint64    `json:"webhooks"`
	OK       uint64    `json:"ok"`
	Latency  LatencyMS `json:"latency_ms"`
}

// byTransport splits results by the transport of the device each webhook
// was for (devs: message id -> device index + 1, as the targeter recorded
// it); nil for a swarm on one transport, whose figures are the run's.
func byTransport(sw *Swarm, results []vegeta.Result, devs *idTable) []TransportStats {
	ts := sw.Transports()
	if len(ts) < 2 {
		return nil
	}
	stats := make([]TransportStats, len(ts))
	metrics := make([]vegeta.Metrics, len(ts))
	for i, t := range ts {
		stats[i].Transport = t
		times := sw.connectTimes(t)
		slices.Sort(times)
		stats[i].Connected = len(times)
		stats[i].ConnectP50MS = millis(quantile(times, 0.50))
		stats[i].ConnectP99MS = millis(quantile(times, 0.99))
	}
	for d := range sw.Len() {
		stats[slices.Index(ts, sw.Transport(d))].Devices++
	}
	for k := range results {
		r := &results[k]
		id, ok := idFromURL(r.URL)
		if !ok || devs == nil {
			continue
		}
		d := int(devs.get(id)) - 1
		if d < 0 || d >= sw.Len() {
			continue
		}
		i := slices.Index(ts, sw.Transport(d))
		metrics[i].Add(r)
		stats[i].Webhooks++
		if r.Code >= 200 && r.Code < 300 {
			stats[i].OK++
		}
	}
	for i := range stats {
		metrics[i].Close()
		stats[i].Latency = latencyMS(&metrics[i])
	}
	return stats
}
