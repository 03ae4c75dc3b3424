package transport

import "fmt"

// Kind is a transport device sessions ride on: what a Conn says it is, the
// transport label of the relay's metrics, and a device's --transport.
type Kind uint8

// The transports. The zero value is raw QUIC, every device's default.
const (
	KindQUIC         Kind = iota // raw QUIC, ALPN awtrix-relay/1 (PROTOCOL §2)
	KindWebTransport             // WebTransport over HTTP/3 (§2.4)
	KindWebSocket                // streams multiplexed over a WebSocket, for networks without UDP (§2.5)
	// KindMQTT is a stock clock's own MQTT client, the relay standing in
	// for its broker (package mqtt; PROTOCOL §10). It carries no Conn of
	// this package and no device agent dials it.
	KindMQTT
	numKinds
)

// Kinds lists every Kind, in order.
var Kinds = [numKinds]Kind{KindQUIC, KindWebTransport, KindWebSocket, KindMQTT}

var kindNames = [numKinds]string{"quic", "webtransport", "websocket", "mqtt"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("transport.Kind(%d)", uint8(k))
}

// ParseKind is the Kind String names.
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if s == name {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("transport %q: want quic, webtransport, websocket or mqtt", s)
}

// MarshalText and UnmarshalText make a Kind a flag (flag.TextVar) or a
// configuration field.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k *Kind) UnmarshalText(b []byte) error {
	p, err := ParseKind(string(b))
	if err == nil {
		*k = p
	}
	return err
}
