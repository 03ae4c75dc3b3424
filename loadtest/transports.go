package loadtest

// This file is the devices' transports: the mix of them a swarm has
// (--webtransport-share, --websocket-share, --mqtt-share, the rest raw
// QUIC), and a run's figures split by transport when it has several.

import (
	"slices"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The devices' transports, as Summary.Transport and TransportStats name them.
const (
	TransportQUIC         = "quic"
	TransportWebTransport = "webtransport"
	TransportWebSocket    = "websocket"
	// TransportMQTT is a stock AWTRIX 3 clock on its own MQTT client, the
	// relay as its broker (--mqtt); mqttclient.go.
	TransportMQTT  = "mqtt"
	TransportMixed = "mixed"
)

// mix is a swarm's shares of devices on WebTransport, on WebSocket and on
// MQTT; the rest are on raw QUIC.
type mix struct{ wt, ws, mq float64 }

// pure is the mix with every device on transport.
func pure(transport string) mix {
	switch transport {
	case TransportWebTransport:
		return mix{wt: 1}
	case TransportWebSocket:
		return mix{ws: 1}
	case TransportMQTT:
		return mix{mq: 1}
	}
	return mix{}
}

// mix is the swarm the flags ask for.
func (c *Config) mix() mix {
	return mix{wt: c.WebTransportShare, ws: c.WebSocketShare, mq: c.MQTTShare}
}

// share is the fraction of the mix's devices on transport.
func (m mix) share(transport string) float64 {
	switch transport {
	case TransportWebTransport:
		return m.wt
	case TransportWebSocket:
		return m.ws
	case TransportMQTT:
		return m.mq
	}
	return 1 - m.wt - m.ws - m.mq
}

// transportsOf lists the transports a mix puts devices on, in the order
// Swarm.Transports uses.
func transportsOf(m mix) []string {
	var ts []string
	if m.wt+m.ws+m.mq < 1-1e-9 { // shares that add up to 1 in decimal may not in binary
		ts = append(ts, TransportQUIC)
	}
	if m.wt > 0 {
		ts = append(ts, TransportWebTransport)
	}
	if m.ws > 0 {
		ts = append(ts, TransportWebSocket)
	}
	if m.mq > 0 {
		ts = append(ts, TransportMQTT)
	}
	return ts
}

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
