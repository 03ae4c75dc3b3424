package loadtest

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/pixelrelay/relay/awtrix"
	"github.com/pixelrelay/relay/internal/mosquittotest"
	"github.com/pixelrelay/relay/internal/mqttclock"
	"github.com/pixelrelay/relay/wire"
)

// The swarm's clock subscribes as the simulated firmware does, and each
// filter tells the relay AWTRIX 3 and the prefix.
func TestMQTTFilters(t *testing.T) {
	if want := mqttclock.AWTRIX3Topics(); !slices.Equal(mqttFilters3, want) {
		t.Errorf("filters %q, want mqttclock's %q", mqttFilters3, want)
	}
	for _, f := range mqttFilters3 {
		if d, p, ok := awtrix.DialectOf("awtrix_0000ab" + f); !ok || d != awtrix.Dialect3 || p != "awtrix_0000ab" {
			t.Errorf("%s: %v %q %v", f, d, p, ok)
		}
	}
}

// received is a handler that keeps what reached a clock.
type received struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
	got  chan struct{}
}

func newReceived() *received { return &received{got: make(chan struct{}, 16)} }

func (r *received) handle(_ *mqttConn, topic string, payload []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, topic+" "+string(payload))
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *received) wait(t *testing.T, n int) []string {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for range n {
		select {
		case <-r.got:
		case <-timeout:
			t.Fatalf("waited 5 s for %d messages", n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// The lean clock logs in to mosquitto with AWTRIX 3's subscriptions,
// takes publishes (an empty sendscreen too), publishes, and ends with its
// context.
func TestMQTTClient(t *testing.T) {
	b := mosquittotest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := newReceived()
	c, login, err := dialMQTT(ctx, b.Addr(), mqttIdentity{clientID: "awtrix_000001", password: wire.NewToken(), prefix: "awtrix_000001"}, got.handle)
	if err != nil {
		t.Fatal(err)
	}
	if login.connack <= 0 || login.ready < login.connack {
		t.Errorf("login %+v: want 0 < connack <= ready", login)
	}
	served := make(chan error, 1)
	go func() { served <- c.Serve() }()

	other, _, err := dialMQTT(ctx, b.Addr(), mqttIdentity{clientID: "awtrix_000002", password: "x", prefix: "awtrix_000002"}, newReceived().handle)
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	if err := other.Publish("awtrix_000001/notify", []byte(`{"lt":[1,2],"text":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	if err := other.Publish("awtrix_000001/sendscreen", nil); err != nil {
		t.Fatal(err)
	}
	msgs := got.wait(t, 2)
	if want := []string{`awtrix_000001/notify {"lt":[1,2],"text":"hi"}`, "awtrix_000001/sendscreen "}; !slices.Equal(msgs, want) {
		t.Errorf("received %q, want %q", msgs, want)
	}
	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve after the context ended: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the context ended")
	}
	if err := c.Publish("awtrix_000001/screen", mqttScreen); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Publish after close: %v", err)
	}
}

// A broker that refuses the login answers a typed error with its code.
func TestMQTTClientRefused(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.WithUser("someone", "secret"))
	_, _, err := dialMQTT(context.Background(), b.Addr(), mqttIdentity{clientID: "awtrix_000003", password: wire.NewToken(), prefix: "awtrix_000003"}, newReceived().handle)
	var ce *connackError
	if !errors.As(err, &ce) || (ce.code != packets.ErrRefusedBadUsernameOrPassword && ce.code != packets.ErrRefusedNotAuthorised) {
		t.Fatalf("login with a wrong password: %v, want CONNACK 4 or 5", err)
	}
}

// fakeBroker accepts one connection, answers its CONNECT with CONNACK and
// then writes what after says.
func fakeBroker(t *testing.T, after []byte) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		if _, err := packets.ReadPacket(nc); err != nil {
			return
		}
		packets.NewControlPacket(packets.Connack).Write(nc)
		nc.Write(after)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var buf [512]byte
		for { // until the clock hangs up
			if _, err := nc.Read(buf[:]); err != nil {
				return
			}
		}
	}()
	return l.Addr().String()
}

// What a broker may not send ends the login: a packet over the bound
// (refused before it is read), a length of five bytes, a second CONNACK.
func TestMQTTClientBounds(t *testing.T) {
	for name, after := range map[string][]byte{
		"too large":      {0x30, 0x80, 0x80, 0x08}, // PUBLISH of 128 KiB
		"five-byte size": {0x30, 0x80, 0x80, 0x80, 0x80, 0x01},
		"second CONNACK": {0x20, 0x02, 0x00, 0x00},
	} {
		t.Run(name, func(t *testing.T) {
			addr := fakeBroker(t, after)
			_, _, err := dialMQTT(context.Background(), addr, mqttIdentity{clientID: "c", password: "p", prefix: "p"}, newReceived().handle)
			if !errors.Is(err, errMQTTProtocol) {
				t.Errorf("%v, want errMQTTProtocol", err)
			}
		})
	}
}

// MQTT clocks get only the bodies AWTRIX 3 takes over MQTT: not the
// basics timer, not settings; the other devices get every body.
func TestMQTTBodies(t *testing.T) {
	if len(mqttSmallBodies) == 0 || len(mqttBitmapBodies) != len(bitmapBodies) {
		t.Fatalf("%d small and %d bitmap bodies for MQTT (of %d and %d)", len(mqttSmallBodies), len(mqttBitmapBodies), len(smallBodies), len(bitmapBodies))
	}
	for _, b := range mqttSmallBodies {
		if b.mode == "basics" || b.mode == "settings" {
			t.Errorf("an MQTT body of mode %s, which AWTRIX 3 cannot take over MQTT", b.mode)
		}
	}
	tokens := []string{wire.NewToken(), wire.NewToken()}
	tg, err := newTargeter(newFrontends("127.0.0.1:1"), 2, func(i int) string { return tokens[i] }, func() uint64 { return 0 }, DistUniform, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	tg.mqtt = func(i int) bool { return i == 1 }
	modes := map[int]map[string]bool{0: {}, 1: {}}
	for range 2000 {
		for dev := range 2 {
			modes[dev][tg.body(dev).mode] = true
		}
	}
	if modes[1]["basics"] || modes[1]["settings"] || !modes[1]["notify"] || !modes[1]["customapp"] {
		t.Errorf("an MQTT clock got modes %v", modes[1])
	}
	if !modes[0]["basics"] || !modes[0]["settings"] {
		t.Errorf("a QUIC device got modes %v, want basics and settings among them", modes[0])
	}
}

func TestLastFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		val  string
		ok   bool
	}{
		{[]string{"--mqtt", "a:1"}, "a:1", true},
		{[]string{"-mqtt=a:1", "--mqtt", "b:2"}, "b:2", true},
		{[]string{"--mqtt-max-conns", "5"}, "", false},
		{[]string{"mqtt", "a:1"}, "", false},
		{[]string{"--mqtt"}, "", false},
	} {
		if val, ok := lastFlag(c.args, "mqtt"); val != c.val || ok != c.ok {
			t.Errorf("lastFlag(%q) = %q, %v; want %q, %v", c.args, val, ok, c.val, c.ok)
		}
	}
}

func TestMQTTLimits(t *testing.T) {
	if got := mqttLimits([]string{"relay", "--mqtt-connect-ip-rate", "0"}); !strings.Contains(got, "off") {
		t.Errorf("rate 0: %q", got)
	}
	if got := mqttLimits([]string{"relay", "--mqtt-connect-ip-rate", "0", "--mqtt-connect-ip-rate=20"}); !strings.Contains(got, "on: --mqtt-connect-ip-rate 20, --mqtt-connect-ip-burst 200 (default)") {
		t.Errorf("the operator's rate: %q", got)
	}
}
