package mqtt

import (
	"bufio"
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Bad input, each case on its own connection, with the answer MQTT 3.1.1
// gives (a CONNACK code, a SUBACK failure, a dropped publish, or a closed
// connection) and the relay still serving a good clock after it.
func TestBadInput(t *testing.T) {
	const maxPacket = 1024
	rl := start(t, func(c *Config, _ *session.Config) {
		c.MaxPacket, c.Ack = maxPacket, AckSent
		c.Pings.Burst = 10
	})
	loggedIn := func(c *client) {
		t.Helper()
		if code := c.connect(wire.NewToken()); code != packets.Accepted {
			t.Fatalf("CONNACK %d", code)
		}
	}
	for _, tc := range []struct {
		name string
		run  func(c *client)
		// closed: the relay closes the connection after run; reason, if
		// set, is the relay_mqtt_closed_total it counts.
		closed bool
		reason string
	}{
		{name: "protocol name", closed: true, reason: closeProtocol, run: func(c *client) {
			p := connectPacket(wire.NewToken())
			p.ProtocolName = "MQTX"
			c.send(p) // §3.1.2.1: closed without a CONNACK
		}},
		{name: "protocol level 5", closed: true, run: func(c *client) {
			p := connectPacket(wire.NewToken())
			p.ProtocolVersion = 5
			c.send(p)
			if ack := c.next().(*packets.ConnackPacket); ack.ReturnCode != packets.ErrRefusedBadProtocolVersion {
				t.Fatalf("CONNACK %d, want 1", ack.ReturnCode)
			}
		}},
		{name: "MQTT 3.1", closed: true, run: func(c *client) {
			p := connectPacket(wire.NewToken())
			p.ProtocolName, p.ProtocolVersion = "MQIsdp", 3
			c.send(p)
			if ack := c.next().(*packets.ConnackPacket); ack.ReturnCode != packets.ErrRefusedBadProtocolVersion {
				t.Fatalf("CONNACK %d, want 1", ack.ReturnCode)
			}
		}},
		{name: "weak token", closed: true, run: func(c *client) {
			if code := c.connect("hunter2"); code != packets.ErrRefusedBadUsernameOrPassword {
				t.Fatalf("CONNACK %d, want 4", code)
			}
		}},
		{name: "no password", closed: true, run: func(c *client) {
			if code := c.connect(""); code != packets.ErrRefusedBadUsernameOrPassword {
				t.Fatalf("CONNACK %d, want 4", code)
			}
		}},
		{name: "first packet not CONNECT", closed: true, reason: closeProtocol, run: func(c *client) {
			c.sendBytes([]byte{0xc0, 0x00})
		}},
		{name: "second CONNECT", closed: true, reason: closeProtocol, run: func(c *client) {
			loggedIn(c)
			c.send(connectPacket(wire.NewToken()))
		}},
		{name: "SUBSCRIBE outside the prefix", run: func(c *client) {
			loggedIn(c)
			if codes := c.subscribe("p/notify", "q/notify", "p/#", "#", "p/cmd/#"); string(codes) != "\x00\x80\x80\x80\x80" {
				t.Fatalf("SUBACK %v, want 0 for p/notify and 0x80 for the rest", codes)
			}
		}},
		{name: "PUBLISH to another device's topics", run: func(c *client) {
			loggedIn(c)
			c.subscribe("p/notify")
			before := testutil.ToFloat64(rl.srv.m.dropped[dropTopic])
			c.publish("q/notify", `{"text":"spoof"}`)
			c.publish("p/notify", `{"text":"to itself"}`) // a command topic: the relay is not a broker
			c.send(packets.NewControlPacket(packets.Pingreq))
			if _, ok := c.next().(*packets.PingrespPacket); !ok {
				t.Fatal("want PINGRESP")
			}
			if got := testutil.ToFloat64(rl.srv.m.dropped[dropTopic]) - before; got != 2 {
				t.Fatalf("%v publishes dropped, want 2", got)
			}
		}},
		{name: "QoS 2", closed: true, reason: closeProtocol, run: func(c *client) {
			loggedIn(c)
			p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			p.TopicName, p.Qos, p.MessageID, p.Payload = "p/stats", 2, 1, []byte("{}")
			c.send(p)
		}},
		{name: "oversized packet", closed: true, reason: closeTooLarge, run: func(c *client) {
			loggedIn(c)
			c.sendBytes([]byte{0x30, 0x81, 0x08}) // 1025 bytes announced
		}},
		{name: "remaining length never ends", closed: true, reason: closeProtocol, run: func(c *client) {
			loggedIn(c)
			c.sendBytes([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})
		}},
		{name: "PINGREQ flood", closed: true, reason: closePingFlood, run: func(c *client) {
			loggedIn(c)
			for range 50 {
				if _, err := c.nc.Write([]byte{0xc0, 0x00}); err != nil {
					return // closed while flooding
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before float64
			if tc.reason != "" {
				before = testutil.ToFloat64(rl.srv.m.closed[tc.reason])
			}
			c := dial(t, rl.addr)
			c.t = t
			tc.run(c)
			if tc.closed {
				for { // PINGRESPs of a flood may come first
					p, err := c.read()
					if err != nil {
						break
					}
					if _, ok := p.(*packets.PingrespPacket); !ok {
						t.Fatalf("got %s, want the connection closed", p)
					}
				}
			}
			if tc.reason != "" {
				waitFor(t, func() bool { return testutil.ToFloat64(rl.srv.m.closed[tc.reason]) == before+1 })
			}
			// The relay still serves a good clock.
			tok := wire.NewToken()
			good := clock3(t, rl, tok)
			res := rl.async(tok, "notify", `{"text":"ok"}`)
			good.nextPublish()
			if r := <-res; r.rep.Status != 200 {
				t.Fatalf("good clock after %s: %d %s %v", tc.name, r.rep.Status, r.rep.Body, r.err)
			}
		})
	}
}

// pipeRelay is a relay whose connections are net.Pipes, for virtual time.
func pipeRelay(t *testing.T, mutate func(*Config)) (*router.Router, *Server, func() *client) {
	r := router.New()
	sc := session.DefaultConfig()
	sc.RefuseLinger = 0
	sess, err := session.New(r, sc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(sess, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return r, srv, func() *client {
		a, b := net.Pipe()
		srv.start(b, router.PathMQTTPlain)
		t.Cleanup(func() { a.Close() })
		// Virtual time: a read may wait out any timeout of the relay's.
		return &client{t: t, nc: a, br: bufio.NewReader(a), wait: time.Hour}
	}
}

// The timeouts, in virtual time: each fires exactly when it should.
func TestTimeouts(t *testing.T) {
	t.Run("slow CONNECT", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, srv, dialPipe := pipeRelay(t, nil)
			c := dialPipe()
			t0 := time.Now()
			c.closed()
			if d := time.Since(t0); d != DefaultConnectTimeout {
				t.Fatalf("closed after %v, want %v", d, DefaultConnectTimeout)
			}
			if testutil.ToFloat64(srv.m.closed[closeConnectTimeout]) != 1 {
				t.Fatal("connect_timeout not counted")
			}
		})
	})
	t.Run("keep-alive", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, srv, dialPipe := pipeRelay(t, nil)
			c := dialPipe()
			p := connectPacket(wire.NewToken())
			p.Keepalive = 10
			go c.send(p)
			c.next() // CONNACK
			t0 := time.Now()
			c.closed()
			if d := time.Since(t0); d != 15*time.Second {
				t.Fatalf("closed after %v of silence, want 1.5 x 10 s", d)
			}
			if testutil.ToFloat64(srv.m.closed[closeKeepAlive]) != 1 {
				t.Fatal("keepalive not counted")
			}
		})
	})
	t.Run("no keep-alive is held to the maximum", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, _, dialPipe := pipeRelay(t, func(c *Config) { c.MaxKeepAlive = time.Minute })
			c := dialPipe()
			p := connectPacket(wire.NewToken())
			p.Keepalive = 0
			go c.send(p)
			c.next()
			t0 := time.Now()
			c.closed()
			if d := time.Since(t0); d != 90*time.Second {
				t.Fatalf("closed after %v of silence, want 1.5 x --mqtt-max-keepalive", d)
			}
		})
	})
	t.Run("unconfirmed command", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r, srv, dialPipe := pipeRelay(t, nil)
			c := dialPipe()
			tok := wire.NewToken()
			go c.send(connectPacket(tok))
			c.next()
			sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
			sub.MessageID, sub.Topics, sub.Qoss = 1, []string{"p/notify", "p/sendscreen"}, []byte{0, 0}
			go c.send(sub)
			c.next()    // SUBACK
			go func() { // the clock takes the command and never sends its screen
				for {
					if _, err := c.read(); err != nil {
						return
					}
				}
			}()
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rep, err := r.Deliver(ctx, router.KeyOf([]byte(tok)), router.Message{Mode: "notify", Body: []byte(`{"text":"x"}`)})
			if err != nil || rep.Status != 504 || rep.Path != router.PathMQTTPlain {
				t.Fatalf("answer %d %s %v", rep.Status, rep.Body, err)
			}
			if d := time.Since(t0); d != DefaultAckTimeout {
				t.Fatalf("answered after %v, want --mqtt-ack-timeout %v", d, DefaultAckTimeout)
			}
			if testutil.ToFloat64(srv.m.acks[ackTimeout]) != 1 {
				t.Fatal("timeout not counted")
			}
			c.nc.Close()
		})
	})
}
