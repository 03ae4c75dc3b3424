package mqttclock_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/pixelrelay/relay/internal/mosquittotest"
	"github.com/pixelrelay/relay/internal/mqttclock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every wait: far above what loopback needs, so it only
// ends a failing test.
const timeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// dial dials a clock on b, closed at the end of the test.
func dial(t *testing.T, b *mosquittotest.Broker, cfg mqttclock.Config) *mqttclock.Clock {
	t.Helper()
	if cfg.Broker == "" {
		cfg.Broker = b.URL()
	}
	c, err := mqttclock.Dial(testContext(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

var observers atomic.Int64 // numbers the observers' client ids

// observer is a second, ordinary MQTT client watching the broker from the
// outside: what it receives, in order.
type observer struct {
	client mqtt.Client
	msgs   chan mqttclock.Message
}

func observe(t *testing.T, b *mosquittotest.Broker, filters ...string) *observer {
	t.Helper()
	o := &observer{msgs: make(chan mqttclock.Message, 4096)}
	opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(fmt.Sprintf("observer-%d", observers.Add(1))).
		SetTLSConfig(b.TLSConfig()).SetProtocolVersion(4).SetAutoReconnect(false).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			o.msgs <- mqttclock.Message{Topic: m.Topic(), Payload: append([]byte{}, m.Payload()...), Retained: m.Retained()}
		})
	o.client = mqtt.NewClient(opts)
	if tok := o.client.Connect(); !tok.WaitTimeout(timeout) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	t.Cleanup(func() { o.client.Disconnect(250) })
	for _, f := range filters {
		if tok := o.client.Subscribe(f, 0, nil); !tok.WaitTimeout(timeout) || tok.Error() != nil {
			t.Fatalf("observer subscribe %s: %v", f, tok.Error())
		}
	}
	return o
}

// publish publishes at QoS 0 and waits until it is written. The broker
// keeps one client's messages in order, so a later publish is a barrier
// for earlier ones.
func (o *observer) publish(t *testing.T, topic string, payload []byte) {
	t.Helper()
	if tok := o.client.Publish(topic, 0, false, payload); !tok.WaitTimeout(timeout) || tok.Error() != nil {
		t.Fatalf("observer publish %s: %v", topic, tok.Error())
	}
}

// next is the next message the observer received.
func (o *observer) next(t *testing.T) mqttclock.Message {
	t.Helper()
	select {
	case m := <-o.msgs:
		return m
	case <-time.After(timeout):
		t.Fatal("observer: nothing received")
		return mqttclock.Message{}
	}
}

// nextOn is the next message on topic, skipping others.
func (o *observer) nextOn(t *testing.T, topic string) mqttclock.Message {
	t.Helper()
	for {
		if m := o.next(t); m.Topic == topic {
			return m
		}
	}
}

// next is the clock's next command.
func next(t *testing.T, c *mqttclock.Clock) mqttclock.Message {
	t.Helper()
	m, err := c.Next(testContext(t))
	if err != nil {
		t.Fatalf("clock Next: %v", err)
	}
	return m
}

// waitFor polls cond, for states with no event to wait on (the broker's
// log); it fails the test after timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func wait(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("%s: not within %v", what, timeout)
	}
}
