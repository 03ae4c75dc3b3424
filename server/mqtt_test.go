package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/webhook"
	"github.com/pixelrelay/relay/wire"
)

// mosquittoSub runs Debian's mosquitto_sub against the relay as an outside
// MQTT client: it logs in with tok as its password, subscribes to topic
// and exits after one message, printing "topic payload".
func mosquittoSub(t *testing.T, addr net.Addr, tok, topic string, extra ...string) (wait func() string) {
	t.Helper()
	path, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Fatal("mosquitto_sub not found: run make testdeps (Debian's mosquitto-clients)")
	}
	host, port, _ := net.SplitHostPort(addr.String())
	ctx, cancel := context.WithTimeout(context.Background(), relaytest.WaitTimeout)
	args := append([]string{"-h", host, "-p", port, "-V", "mqttv311", "-u", "any-name", "-P", tok, "-t", topic, "-C", "1", "-v"}, extra...)
	cmd := exec.CommandContext(ctx, path, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	return func() string {
		t.Helper()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("mosquitto_sub: %v: %s", err, stderr.String())
		}
		return strings.TrimSpace(out.String())
	}
}

// bound waits until tok's device is bound in r's router.
func bound(t *testing.T, r *relaytest.Relay, tok string) {
	t.Helper()
	relaytest.WaitFor(t, func() bool { return r.Router().Lookup(router.KeyOf([]byte(tok))) != nil })
}

func postPath(t *testing.T, r *relaytest.Relay, mode, tok, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.URL(mode, tok), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String(), resp.Header.Get(webhook.HeaderPath)
}

// TestMosquittoSubReceivesAWebhook: an outside MQTT client (mosquitto_sub)
// logs in with a device token and gets a webhook's payload under its
// prefix, over plain MQTT and over TLS; the caller is told the path.
func TestMosquittoSubReceivesAWebhook(t *testing.T) {
	r := relaytest.Start(t, relaytest.MQTT)
	for _, tc := range []struct {
		name  string
		addr  net.Addr
		extra []string
		path  string
	}{
		{"plain", r.MQTTAddr(), nil, router.PathMQTTPlain},
		{"tls", r.MQTTSAddr(), []string{"--cafile", r.CAFile, "--insecure"}, router.PathMQTTTLS}, // --insecure: the dev certificate names localhost, not 127.0.0.1
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := wire.NewToken()
			wait := mosquittoSub(t, tc.addr, tok, "mine/notify", tc.extra...)
			bound(t, r, tok)
			status, body, path := postPath(t, r, "notify", tok, `{"text":"Doorbell"}`)
			if status != 200 || path != tc.path {
				t.Fatalf("webhook: %d %s, Relay-Path %q", status, body, path)
			}
			// mosquitto_sub subscribed to no sendscreen: the relay can only
			// say the command was written.
			if body != `{"confirmed":"sent","ok":true}` {
				t.Fatalf("body %s", body)
			}
			if got := wait(); got != `mine/notify {"text":"Doorbell"}` {
				t.Fatalf("mosquitto_sub printed %q", got)
			}
		})
	}
	if got := metric(t, r, `relay_logins_total{transport="mqtt"}`); got != 2 {
		t.Fatalf("MQTT logins counted: %v, want 2", got)
	}
}

// TestTakeoverBetweenMQTTAndQUIC: one token, a QUIC agent and an MQTT
// client: each login takes the token over from the other, across
// transports, and the webhook reaches whichever logged in last.
func TestTakeoverBetweenMQTTAndQUIC(t *testing.T) {
	r := relaytest.Start(t, relaytest.MQTT)
	tok := wire.NewToken()
	_, served := r.Dial(t, tok, echo("quic"))
	if s, body := r.Post(t, "notify", tok, `{}`); s != 200 || !strings.Contains(string(body), `"quic"`) {
		t.Fatalf("QUIC device: %d %s", s, body)
	}
	c := dialMQTT(t, r.MQTTAddr(), tok, "mine/notify")
	if err := <-served; !errors.Is(err, device.ErrReplaced) {
		t.Fatalf("QUIC session ended with %v, want ErrReplaced", err)
	}
	got := make(chan string, 1)
	go func() { got <- c.next().TopicName }()
	if status, body, path := postPath(t, r, "notify", tok, `{"text":"to mqtt"}`); status != 200 || path != router.PathMQTTPlain {
		t.Fatalf("after the MQTT takeover: %d %s %q", status, body, path)
	}
	if topic := <-got; topic != "mine/notify" {
		t.Fatalf("MQTT client got %q", topic)
	}
	// Back to QUIC: the MQTT connection is closed.
	r.Dial(t, tok, echo("quic2"))
	if _, err := packets.ReadPacket(c.br); err == nil {
		t.Fatal("the MQTT connection stayed open after a QUIC takeover")
	}
	if s, body := r.Post(t, "notify", tok, `{}`); s != 200 || !strings.Contains(string(body), `"quic2"`) {
		t.Fatalf("after the QUIC takeover: %d %s", s, body)
	}
	if got := metric(t, r, `relay_takeovers_total`); got != 2 {
		t.Fatalf("takeovers %v, want 2", got)
	}
}

// mqttConn is a raw MQTT 3.1.1 client for the tests that need one held
// open (mosquitto_sub reconnects on its own).
type mqttConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// dialMQTT logs in with tok, subscribes to filter and returns once the
// relay granted it.
func dialMQTT(t *testing.T, addr net.Addr, tok, filter string) *mqttConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(relaytest.WaitTimeout))
	c := &mqttConn{t: t, nc: nc, br: bufio.NewReader(nc)}
	p := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	p.ProtocolName, p.ProtocolVersion, p.ClientIdentifier, p.Keepalive, p.CleanSession = "MQTT", 4, "test", 15, true
	p.UsernameFlag, p.Username, p.PasswordFlag, p.Password = true, "u", true, []byte(tok)
	if err := p.Write(nc); err != nil {
		t.Fatal(err)
	}
	if ack, err := packets.ReadPacket(c.br); err != nil || ack.(*packets.ConnackPacket).ReturnCode != 0 {
		t.Fatalf("CONNACK %v %v", ack, err)
	}
	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID, sub.Topics, sub.Qoss = 1, []string{filter}, []byte{0}
	if err := sub.Write(nc); err != nil {
		t.Fatal(err)
	}
	if ack, err := packets.ReadPacket(c.br); err != nil || ack.(*packets.SubackPacket).ReturnCodes[0] != 0 {
		t.Fatalf("SUBACK %v %v", ack, err)
	}
	return c
}

func (c *mqttConn) next() *packets.PublishPacket {
	p, err := packets.ReadPacket(c.br)
	if err != nil {
		c.t.Errorf("MQTT read: %v", err)
		return &packets.PublishPacket{}
	}
	pub, _ := p.(*packets.PublishPacket)
	if pub == nil {
		c.t.Errorf("MQTT client got %s, want PUBLISH", p)
		return &packets.PublishPacket{}
	}
	return pub
}

// TestMQTTOnTheHTTPSPort: with --mqtt-on-listen, a clock whose network
// blocks 1883 logs in on the HTTPS port (told from TLS by the first byte),
// and the port still serves HTTPS webhooks on new connections.
func TestMQTTOnTheHTTPSPort(t *testing.T) {
	r := relaytest.Start(t, func(c *server.Config) { c.MQTTOnListen = true })
	tok := wire.NewToken()
	c := dialMQTT(t, r.Node.Addr(), tok, "mine/notify")
	got := make(chan string, 1)
	go func() { p := c.next(); got <- p.TopicName + " " + string(p.Payload) }()
	r.HTTP.CloseIdleConnections() // a new TLS connection for the webhook
	status, body, path := postPath(t, r, "notify", tok, `{"text":"via 8443"}`)
	if status != 200 || path != router.PathMQTTPlain {
		t.Fatalf("webhook: %d %s %q", status, body, path)
	}
	if m := <-got; m != `mine/notify {"text":"via 8443"}` {
		t.Fatalf("clock got %q", m)
	}
	if got := metric(t, r, `relay_mqtt_connections_total{path="mqtt-plain"}`); got != 1 {
		t.Fatalf("MQTT connections %v, want 1", got)
	}
	if got := metric(t, r, `relay_webhooks_total{outcome="bad_request"}`); got != 0 {
		t.Fatalf("the hand-off counted as a bad request: %v", got)
	}
}

// TestMQTTBehindABalancer: with --proxy-from, the MQTT port reads the
// balancer's PROXY header, and the per-source connect limit counts the
// clock's address it names, not the balancer's.
func TestMQTTBehindABalancer(t *testing.T) {
	r := relaytest.Start(t, func(c *server.Config) {
		relaytest.MQTT(c)
		c.ProxyFrom = []string{"127.0.0.1/32"}
		c.MQTT.ConnectsPerSource = limit.Rate{PerSecond: 1e-9, Burst: 1}
	})
	via := func(src string) (byte, error) {
		nc, err := net.Dial("tcp", r.MQTTAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(relaytest.WaitTimeout))
		if _, err := proxied(src, 1).WriteTo(nc); err != nil {
			t.Fatal(err)
		}
		p := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
		p.ProtocolName, p.ProtocolVersion, p.ClientIdentifier, p.CleanSession = "MQTT", 4, "c", true
		p.UsernameFlag, p.Username, p.PasswordFlag, p.Password = true, "u", true, []byte(wire.NewToken())
		if err := p.Write(nc); err != nil {
			return 0, err
		}
		ack, err := packets.ReadPacket(bufio.NewReader(nc))
		if err != nil {
			return 0, err
		}
		return ack.(*packets.ConnackPacket).ReturnCode, nil
	}
	for _, src := range []string{"203.0.113.1", "203.0.113.2"} {
		if code, err := via(src); err != nil || code != 0 {
			t.Fatalf("first connection from %s: CONNACK %d, %v", src, code, err)
		}
	}
	if code, err := via("203.0.113.1"); err == nil {
		t.Fatalf("second connection from 203.0.113.1: CONNACK %d, want the connection closed", code)
	}
	if got := metric(t, r, `relay_mqtt_closed_total{reason="source_limit"}`); got != 1 {
		t.Fatalf("source_limit closes %v, want 1", got)
	}
}
