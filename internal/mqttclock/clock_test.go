package mqttclock_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/pixelrelay/relay/internal/mosquittotest"
	"github.com/pixelrelay/relay/internal/mqttclock"
)

// subscriptions are the broker's log lines "CLIENTID QOS FILTER" for id,
// in order.
func subscriptions(b *mosquittotest.Broker, id string) []string {
	re := regexp.MustCompile(`(?m)^\d+: ` + regexp.QuoteMeta(id) + ` (\d) (\S+)$`)
	var subs []string
	for _, m := range re.FindAllStringSubmatch(b.Log(), -1) {
		subs = append(subs, m[1]+" "+m[2])
	}
	return subs
}

// TestAWTRIX3Subscriptions: the broker sees AWTRIX 3's SUBSCRIBEs exactly
// (order, the doubled /nextapp, QoS 0), a publish on each of them reaches
// the clock in order and nothing else does, and the clock's on-connect
// publishes are the firmware's.
func TestAWTRIX3Subscriptions(t *testing.T) {
	b := mosquittotest.Start(t)
	o := observe(t, b, "clk/#")
	c := dial(t, b, mqttclock.Config{ClientID: "awtrix_abcdef", Prefix: "clk", SubscribeGap: time.Millisecond})

	// MQTTManager.cpp's onMqttConnected, written out again here so that
	// this test checks the package's list rather than repeating it.
	firmware := []string{"/brightness", "/notify/dismiss", "/notify", "/custom/#", "/switch", "/settings",
		"/previousapp", "/nextapp", "/doupdate", "/nextapp", "/apps", "/power", "/sleep", "/indicator1",
		"/indicator2", "/indicator3", "/timeformat", "/dateformat", "/reboot", "/moodlight", "/sound",
		"/rtttl", "/sendscreen", "/r2d2"}
	if !slices.Equal(mqttclock.AWTRIX3Topics(), firmware) {
		t.Fatalf("AWTRIX3Topics %q", mqttclock.AWTRIX3Topics())
	}
	var want []string
	for _, topic := range firmware {
		want = append(want, "0 clk"+topic)
	}
	waitFor(t, "24 subscriptions in the broker's log", func() bool { return len(subscriptions(b, "awtrix_abcdef")) >= len(want) })
	if got := subscriptions(b, "awtrix_abcdef"); !slices.Equal(got, want) {
		t.Fatalf("subscriptions:\n got %q\nwant %q", got, want)
	}

	for _, w := range []struct{ topic, payload string }{
		{"clk/stats/effects", `["Fade","MovingLine"`},
		{"clk/stats/transitions", `["Random","Slide","Dim"`},
		{"clk/stats/device", "online"},
	} {
		m := o.next(t)
		if m.Topic != w.topic || !strings.HasPrefix(string(m.Payload), w.payload) || m.Retained {
			t.Fatalf("on connect: %s %q retained=%v, want %s %q...", m.Topic, m.Payload, m.Retained, w.topic, w.payload)
		}
	}

	var sent []string
	for _, topic := range firmware {
		topic = "clk" + strings.Replace(topic, "#", "weather", 1)
		if topic == "clk/sendscreen" || slices.Contains(sent, topic) {
			continue // sendscreen below; /nextapp once
		}
		o.publish(t, topic, []byte("payload of "+topic))
		sent = append(sent, topic)
	}
	// Near misses the clock must not see; the last publish is the barrier.
	for _, topic := range []string{"clk/stats", "clk/screen", "clk/notifyx", "clk/brightness/x", "clk/nope", "other/notify", "clk"} {
		o.publish(t, topic, []byte("x"))
	}
	o.publish(t, "clk/custom/last", []byte("barrier"))
	sent = append(sent, "clk/custom/last")

	for _, topic := range sent {
		m := next(t, c)
		if m.Topic != topic || m.Retained {
			t.Fatalf("clock got %s (retained %v), want %s", m.Topic, m.Retained, topic)
		}
		if topic != "clk/custom/last" && string(m.Payload) != "payload of "+topic {
			t.Fatalf("clock got %q on %s", m.Payload, topic)
		}
	}
	if got := len(c.Commands()); got != len(sent) {
		t.Fatalf("Commands has %d messages, want %d", got, len(sent))
	}
}

// TestAWTRIX3Screen: P/sendscreen is answered on P/screen with the screen
// as a JSON array of 0xRRGGBB integers, row by row.
func TestAWTRIX3Screen(t *testing.T) {
	b := mosquittotest.Start(t)
	screen := mqttclock.DefaultScreen()
	screen[0], screen[255] = 0xFFFFFF, 0xFF123456 // the top byte is not a colour
	c := dial(t, b, mqttclock.Config{Prefix: "clk", Screen: screen})
	o := observe(t, b, "clk/screen")
	o.publish(t, "clk/sendscreen", nil)

	m := o.next(t)
	var got []uint32
	if err := json.Unmarshal(m.Payload, &got); err != nil {
		t.Fatalf("screen %q: %v", m.Payload, err)
	}
	want := slices.Clone(screen)
	want[255] = 0x123456
	if !slices.Equal(got, want) {
		t.Fatalf("screen:\n got %v\nwant %v", got, want)
	}
	if cmd := next(t, c); cmd.Topic != "clk/sendscreen" {
		t.Fatalf("command %s", cmd.Topic)
	}
	if !slices.Equal(mqttclock.DefaultScreen(), mqttclock.DefaultScreen()) || len(mqttclock.DefaultScreen()) != 256 {
		t.Fatal("DefaultScreen is not a fixed 32x8 pattern")
	}
}

// TestNG: an NG clock subscribes P/cmd/#, publishes its retained state,
// answers each command on /result (Result's payload, or none), answers
// screen/get with state/screen then {"ok":true}, and does not take its own
// answers, or anyone's /result, for commands.
func TestNG(t *testing.T) {
	b := mosquittotest.Start(t)
	o := observe(t, b, "ng/#")
	failure := []byte(`{"ok":false,"error":{"code":"validationFailed","message":"out of range","field":"brightness"}}`)
	c := dial(t, b, mqttclock.Config{
		Dialect:  mqttclock.NG,
		ClientID: "a4cf12ab34cd",
		Prefix:   "ng",
		Result: func(topic string, payload []byte) []byte {
			switch topic {
			case "ng/cmd/settings":
				return failure
			case "ng/cmd/nothing":
				return []byte{}
			}
			return nil
		},
	})
	waitFor(t, "the subscription in the broker's log", func() bool { return len(subscriptions(b, "a4cf12ab34cd")) > 0 })
	if got := subscriptions(b, "a4cf12ab34cd"); !slices.Equal(got, []string{"0 ng/cmd/#"}) {
		t.Fatalf("subscriptions %q", got)
	}

	retained := []string{"ng/availability", "ng/state/capabilities", "ng/state/prefix", "ng/state/apps/active",
		"ng/state/buttons/left", "ng/state/buttons/select", "ng/state/buttons/right",
		"ng/state/settings", "ng/state/audio", "ng/state/device"}
	for _, topic := range retained {
		if m := o.next(t); m.Topic != topic {
			t.Fatalf("on connect: %s %q, want %s", m.Topic, m.Payload, topic)
		}
	}
	// A late subscriber gets them as retained messages.
	late := observe(t, b, "ng/#")
	got := map[string]string{}
	for range retained {
		m := late.next(t)
		if !m.Retained {
			t.Fatalf("%s not retained", m.Topic)
		}
		got[m.Topic] = string(m.Payload)
	}
	if got["ng/availability"] != "online" || got["ng/state/prefix"] != "ng" || got["ng/state/apps/active"] != "Time" {
		t.Fatalf("retained state %q", got)
	}
	var dev struct {
		UID          string `json:"uid"`
		MessageCount *int   `json:"messageCount"`
	}
	if err := json.Unmarshal([]byte(got["ng/state/device"]), &dev); err != nil || dev.UID != "a4cf12ab34cd" || dev.MessageCount == nil {
		t.Fatalf("state/device %q: %v", got["ng/state/device"], err)
	}

	// The clock's answers come from it alone, in order; pub's own
	// messages reach answers directly, and are skipped.
	answers := observe(t, b, "ng/cmd/#", "ng/state/screen")
	pub := observe(t, b)
	sent := map[string]bool{}
	for _, m := range []struct{ topic, payload string }{
		{"ng/cmd/notify", `{"text":"hi"}`},
		{"ng/cmd/settings", `{"brightness":999}`},
		{"ng/cmd/nothing", ""},
		{"ng/cmd/apps/next/result", `{"ok":true}`}, // someone else's answer: not a command
		{"ng/cmd", ""},                             // matches no route
		{"ng/cmd/screen/get", ""},
	} {
		pub.publish(t, m.topic, []byte(m.payload))
		sent[m.topic] = true
	}
	for _, w := range []struct{ topic, payload string }{
		{"ng/cmd/notify/result", `{"ok":true}`},
		{"ng/cmd/settings/result", string(failure)},
		// none for nothing, apps/next/result, cmd
		{"ng/state/screen", ""},
		{"ng/cmd/screen/get/result", `{"ok":true}`},
	} {
		m := answers.next(t)
		for sent[m.Topic] {
			m = answers.next(t)
		}
		if m.Topic != w.topic || m.Retained || (w.payload != "" && string(m.Payload) != w.payload) {
			t.Fatalf("answer %s %q, want %s %q", m.Topic, m.Payload, w.topic, w.payload)
		}
		if m.Topic == "ng/state/screen" {
			var s struct {
				Width, Height int
				Pixels        []uint32
			}
			if err := json.Unmarshal(m.Payload, &s); err != nil || s.Width != 32 || s.Height != 8 ||
				!slices.Equal(s.Pixels, mqttclock.DefaultScreen()) {
				t.Fatalf("state/screen %q: %v", m.Payload, err)
			}
		}
	}
	var topics []string
	for _, m := range c.Commands() {
		topics = append(topics, m.Topic)
	}
	if want := []string{"ng/cmd/notify", "ng/cmd/settings", "ng/cmd/nothing", "ng/cmd", "ng/cmd/screen/get"}; !slices.Equal(topics, want) {
		t.Fatalf("Commands %q, want %q", topics, want)
	}
}

// TestOversized: an inbound packet of exactly MaxPacket bytes is taken, one
// byte more is dropped and counted, and an NG clock does not answer it.
func TestOversized(t *testing.T) {
	for _, d := range []mqttclock.Dialect{mqttclock.AWTRIX3, mqttclock.NG} {
		t.Run(d.String(), func(t *testing.T) {
			b := mosquittotest.Start(t)
			c := dial(t, b, mqttclock.Config{Dialect: d, Prefix: "p"})
			o := observe(t, b, "p/cmd/+/result")
			topic := "p/notify"
			if d == mqttclock.NG {
				topic = "p/cmd/notify"
			}
			fits := mqttclock.MaxPacket - mqttclock.PacketSize(topic, 0) - 1 // a 2-byte remaining length
			if mqttclock.PacketSize(topic, fits) != mqttclock.MaxPacket {
				t.Fatalf("PacketSize(%d) = %d", fits, mqttclock.PacketSize(topic, fits))
			}
			o.publish(t, topic, bytes.Repeat([]byte("a"), fits+1))
			o.publish(t, topic, bytes.Repeat([]byte("b"), fits))

			m := next(t, c)
			if len(m.Payload) != fits || m.Payload[0] != 'b' {
				t.Fatalf("first command taken has %d bytes of %q; want the %d that fit", len(m.Payload), m.Payload[:1], fits)
			}
			if c.Dropped() != 1 || len(c.Commands()) != 1 {
				t.Fatalf("Dropped %d, Commands %d; want 1 and 1", c.Dropped(), len(c.Commands()))
			}
			if d == mqttclock.NG { // one answer, to the one that fitted, then the barrier's
				o.publish(t, "p/cmd/barrier", nil)
				for _, want := range []string{"p/cmd/notify/result", "p/cmd/barrier/result"} {
					if r := o.next(t); r.Topic != want {
						t.Fatalf("answer %s, want %s", r.Topic, want)
					}
				}
			}
		})
	}
}

// TestPacketSize: PacketSize is the length of paho's encoding of the
// PUBLISH, on both sides of each remaining-length boundary.
func TestPacketSize(t *testing.T) {
	for _, n := range []int{0, 1, 100, 120, 121, 122, 16000, 16371, 16372, 16373, 2097000, 2097200} {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName = "p/notify"
		p.Payload = make([]byte, n)
		var buf bytes.Buffer
		if err := p.Write(&buf); err != nil {
			t.Fatal(err)
		}
		if got := mqttclock.PacketSize(p.TopicName, n); got != buf.Len() {
			t.Errorf("PacketSize(%q, %d) = %d, encoded %d", p.TopicName, n, got, buf.Len())
		}
	}
}

// TestLost: Lost fires when the broker goes away, and the clock then says
// it is not connected; Close does not fire Lost.
func TestLost(t *testing.T) {
	b := mosquittotest.Start(t)
	c := dial(t, b, mqttclock.Config{Prefix: "p"})
	if !c.Connected() || closed(c.Lost()) {
		t.Fatal("not connected after Dial")
	}
	b.Stop()
	wait(t, "Lost", c.Lost())
	if c.Connected() || closed(c.Online()) {
		t.Fatal("Connected after Lost")
	}
	if err := c.Publish("x", nil); !errors.Is(err, mqttclock.ErrNotConnected) {
		t.Fatalf("Publish after Lost: %v", err)
	}

	b.Restart()
	c2 := dial(t, b, mqttclock.Config{Prefix: "p2"})
	lost := c2.Lost()
	c2.Close()
	if closed(lost) {
		t.Fatal("Close fired Lost")
	}
	if _, err := c2.Next(testContext(t)); !errors.Is(err, mqttclock.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

// TestWill: Drop ends the connection without DISCONNECT and the broker
// publishes each firmware's will; Close sends DISCONNECT and no will.
func TestWill(t *testing.T) {
	for _, w := range []struct {
		dialect  mqttclock.Dialect
		topic    string
		retained bool
	}{
		{mqttclock.AWTRIX3, "p/stats/device", false},
		{mqttclock.NG, "p/availability", true},
	} {
		t.Run(w.dialect.String(), func(t *testing.T) {
			b := mosquittotest.Start(t)
			o := observe(t, b, w.topic)
			c := dial(t, b, mqttclock.Config{Dialect: w.dialect, Prefix: "p"})
			if m := o.next(t); string(m.Payload) != "online" {
				t.Fatalf("on connect: %s %q", m.Topic, m.Payload)
			}
			if err := c.Drop(); err != nil {
				t.Fatal(err)
			}
			wait(t, "Lost after Drop", c.Lost())
			if m := o.next(t); string(m.Payload) != "offline" {
				t.Fatalf("will: %s %q", m.Topic, m.Payload)
			}
			// A late subscriber sees a retained will, and only that.
			late := observe(t, b, w.topic, "p/barrier")
			late.publish(t, "p/barrier", nil)
			m := late.next(t)
			if w.retained && (string(m.Payload) != "offline" || !m.Retained) || !w.retained && m.Topic != "p/barrier" {
				t.Fatalf("late subscriber: %s %q retained %v; the will is retained: %v", m.Topic, m.Payload, m.Retained, w.retained)
			}

			willQ := strings.Replace(w.topic, "p/", "q/", 1)
			o2 := observe(t, b, willQ, "q/barrier")
			c2 := dial(t, b, mqttclock.Config{Dialect: w.dialect, Prefix: "q"})
			if m := o2.next(t); m.Topic != willQ || string(m.Payload) != "online" {
				t.Fatalf("on connect: %s %q", m.Topic, m.Payload)
			}
			c2.Close()
			o2.publish(t, "q/barrier", nil)
			if m := o2.next(t); m.Topic != "q/barrier" {
				t.Fatalf("after Close: %s %q, want no will", m.Topic, m.Payload)
			}
		})
	}
}

// TestReconnect: with Reconnect, a clock whose broker restarts connects
// again, subscribes again and publishes its on-connect messages again.
func TestReconnect(t *testing.T) {
	b := mosquittotest.Start(t)
	c := dial(t, b, mqttclock.Config{ClientID: "awtrix_000001", Prefix: "p", Reconnect: true, ReconnectEvery: 20 * time.Millisecond})
	lost := c.Lost()
	b.Restart()
	wait(t, "Lost", lost)
	wait(t, "Online again", c.Online())
	if !c.Connected() || closed(c.Lost()) {
		t.Fatal("not connected after Online")
	}
	o := observe(t, b, "p/#")
	o.publish(t, "p/sendscreen", nil)
	o.nextOn(t, "p/screen")
	if m := next(t, c); m.Topic != "p/sendscreen" {
		t.Fatalf("command %s", m.Topic)
	}
	waitFor(t, "48 subscriptions over two connections", func() bool { return len(subscriptions(b, "awtrix_000001")) == 48 })
}

// TestRefused: a CONNACK refusal is Dial's error; AWTRIX 3 sends no
// credentials unless both are set.
func TestRefused(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.WithUser("clock", "secret"))
	ctx := testContext(t)
	for _, cfg := range []mqttclock.Config{
		{User: "clock", Password: "wrong"},
		{User: "clock"}, // AWTRIX 3: no credentials at all
		{Dialect: mqttclock.NG, User: "nobody", Password: "secret"},
	} {
		cfg.Broker = b.URL()
		c, err := mqttclock.Dial(ctx, cfg)
		if err == nil {
			c.Close()
			t.Fatalf("%+v: connected", cfg)
		}
		// mosquitto answers 5, not authorised, for a wrong password too.
		if !errors.Is(err, mqttclock.ErrNotAuthorized) || !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			t.Fatalf("%s %s/%s: %v", cfg.Dialect, cfg.User, cfg.Password, err)
		}
	}
	for _, d := range []mqttclock.Dialect{mqttclock.AWTRIX3, mqttclock.NG} {
		dial(t, b, mqttclock.Config{Dialect: d, User: "clock", Password: "secret"})
	}
}

// TestTLS: a clock on tls:// with the broker's certificate trusted.
func TestTLS(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.WithTLS())
	c := dial(t, b, mqttclock.Config{TLS: b.TLSConfig(), Prefix: "p"})
	o := observe(t, b, "p/screen")
	o.publish(t, "p/sendscreen", nil)
	o.next(t)
	if m := next(t, c); m.Topic != "p/sendscreen" {
		t.Fatalf("command %s", m.Topic)
	}

	_, err := mqttclock.Dial(testContext(t), mqttclock.Config{Broker: b.URL()}) // system roots
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Dial trusting the system roots: %v", err)
	}
}

// TestStats: StatsEvery publishes the default stats on schedule, and
// PublishStats and SetApp publish on demand; Config.Stats is sent as is.
func TestStats(t *testing.T) {
	b := mosquittotest.Start(t)
	o := observe(t, b, "#")
	a := dial(t, b, mqttclock.Config{ClientID: "awtrix_123456", Prefix: "a", StatsEvery: 20 * time.Millisecond})
	for range 2 {
		m := o.nextOn(t, "a/stats")
		var s struct {
			UID      string `json:"uid"`
			App      string `json:"app"`
			Messages *int   `json:"messages"`
		}
		if err := json.Unmarshal(m.Payload, &s); err != nil || s.UID != "awtrix_123456" || s.App != "Time" || s.Messages == nil {
			t.Fatalf("stats %q: %v", m.Payload, err)
		}
	}
	a.Close()

	n := dial(t, b, mqttclock.Config{Dialect: mqttclock.NG, Prefix: "n", Stats: []byte(`{"fixed":1}`)})
	if err := n.SetApp("Weather"); err != nil {
		t.Fatal(err)
	}
	if m := o.nextOn(t, "n/state/apps/active"); string(m.Payload) != "Time" { // on connect
		t.Fatalf("apps/active %q", m.Payload)
	}
	if m := o.nextOn(t, "n/state/apps/active"); string(m.Payload) != "Weather" {
		t.Fatalf("apps/active %q", m.Payload)
	}
	if err := n.PublishStats(); err != nil {
		t.Fatal(err)
	}
	if m := o.nextOn(t, "n/state/device"); string(m.Payload) != `{"fixed":1}` {
		t.Fatalf("state/device %q", m.Payload)
	}
}

// TestDialCancel: a broker that accepts TCP and never answers CONNECT
// holds Dial only as long as its context.
func TestDialCancel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = mqttclock.Dial(ctx, mqttclock.Config{Broker: "tcp://" + l.Addr().String()})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Dial took %v after its context ended", d)
	}
}

// TestConfig: invalid configurations are refused before dialling.
func TestConfig(t *testing.T) {
	for _, cfg := range []mqttclock.Config{
		{},
		{Broker: "http://127.0.0.1:1883"},
		{Broker: "tcp://127.0.0.1:1883", Dialect: 7},
		{Broker: "tcp://127.0.0.1:1883", Prefix: "a/+"},
		{Broker: "tcp://127.0.0.1:1883", Screen: make([]uint32, 33)},
		{Broker: "tcp://127.0.0.1:1883", KeepAlive: time.Millisecond},
	} {
		if _, err := mqttclock.Dial(testContext(t), cfg); !errors.Is(err, mqttclock.ErrConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if fmt.Sprint(mqttclock.AWTRIX3, mqttclock.NG) != "awtrix3 awtrix-ng" {
		t.Error("Dialect names")
	}
}
