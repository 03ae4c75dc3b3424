package mqtt

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/wire"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor polls cond until it holds, for states with no event to wait on
// (a counter); internal/relaytest has one too but imports package server,
// which imports this one.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// relay is a router, a session.Server and an MQTT Server on loopback.
type relay struct {
	t    *testing.T
	r    *router.Router
	sess *session.Server
	srv  *Server
	addr string
}

func start(t *testing.T, mutate ...func(*Config, *session.Config)) *relay {
	t.Helper()
	r := router.New()
	sc := session.DefaultConfig()
	sc.RefuseLinger = 0
	cfg := DefaultConfig()
	for _, f := range mutate {
		f(&cfg, &sc)
	}
	sess, err := session.New(r, sc)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(sess, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l, router.PathMQTTPlain) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &relay{t: t, r: r, sess: sess, srv: srv, addr: l.Addr().String()}
}

// deliver routes a webhook's message to token's device, as the frontend
// does.
func (rl *relay) deliver(token, mode, body string) (router.Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rl.r.Deliver(ctx, router.KeyOf([]byte(token)), router.Message{Mode: mode, Body: []byte(body)})
}

// async delivers in a goroutine; the answer comes on the channel.
func (rl *relay) async(token, mode, body string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		rep, err := rl.deliver(token, mode, body)
		ch <- result{rep, err}
	}()
	return ch
}

type result struct {
	rep router.Reply
	err error
}

func (r result) code(t *testing.T) string {
	t.Helper()
	var v struct{ Code string }
	json.Unmarshal(r.rep.Body, &v)
	return v.Code
}

// client is a raw MQTT 3.1.1 client: every byte it sends is the test's.
type client struct {
	t    *testing.T
	nc   net.Conn
	br   *bufio.Reader
	wait time.Duration // bounds read; 0: 10 s
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) send(p packets.ControlPacket) {
	c.t.Helper()
	if err := p.Write(c.nc); err != nil {
		c.t.Fatalf("send %s: %v", p, err)
	}
}

func (c *client) sendBytes(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read returns the next packet from the relay, or the error.
func (c *client) read() (packets.ControlPacket, error) {
	wait := c.wait
	if wait == 0 {
		wait = 10 * time.Second
	}
	c.nc.SetReadDeadline(time.Now().Add(wait))
	return packets.ReadPacket(c.br)
}

func (c *client) next() packets.ControlPacket {
	c.t.Helper()
	p, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

// closed waits for the relay to close the connection; it fails on any
// packet first.
func (c *client) closed() {
	c.t.Helper()
	p, err := c.read()
	if err == nil {
		c.t.Fatalf("got %s, want the connection closed", p)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
		return
	}
	c.t.Fatalf("read: %v, want the connection closed", err)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func connectPacket(token string) *packets.ConnectPacket {
	p := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	p.ProtocolName, p.ProtocolVersion, p.ClientIdentifier, p.Keepalive, p.CleanSession = "MQTT", 4, "awtrix_1a2b3c", 15, true
	p.UsernameFlag, p.Username = true, "clock"
	if token != "" {
		p.PasswordFlag, p.Password = true, []byte(token)
	}
	return p
}

// connect logs in and returns the CONNACK's code.
func (c *client) connect(token string) byte {
	c.t.Helper()
	c.send(connectPacket(token))
	ack, ok := c.next().(*packets.ConnackPacket)
	if !ok {
		c.t.Fatal("want CONNACK")
	}
	return ack.ReturnCode
}

func (c *client) subscribe(filters ...string) []byte {
	c.t.Helper()
	p := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	p.MessageID, p.Topics = 7, filters
	p.Qoss = make([]byte, len(filters))
	c.send(p)
	ack, ok := c.next().(*packets.SubackPacket)
	if !ok || ack.MessageID != 7 {
		c.t.Fatalf("want SUBACK 7, got %v", ack)
	}
	return ack.ReturnCodes
}

func (c *client) publish(topic, payload string) {
	c.t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Payload = topic, []byte(payload)
	c.send(p)
}

// nextPublish reads the relay's next PUBLISH.
func (c *client) nextPublish() *packets.PublishPacket {
	c.t.Helper()
	p, ok := c.next().(*packets.PublishPacket)
	if !ok {
		c.t.Fatalf("want PUBLISH, got %v", p)
	}
	return p
}

// clock3 logs in as an AWTRIX 3 clock with prefix p that subscribed to
// notify and sendscreen.
func clock3(t *testing.T, rl *relay, token string) *client {
	t.Helper()
	c := dial(t, rl.addr)
	if code := c.connect(token); code != packets.Accepted {
		t.Fatalf("CONNACK %d", code)
	}
	if codes := c.subscribe("p/notify", "p/sendscreen", "p/custom/#"); string(codes) != "\x00\x00\x00" {
		t.Fatalf("SUBACK %v", codes)
	}
	return c
}

func TestAWTRIX3ConfirmedByScreen(t *testing.T) {
	rl := start(t)
	tok := wire.NewToken()
	c := clock3(t, rl, tok)
	res := rl.async(tok, "notify", `{"text":"Doorbell"}`)
	if p := c.nextPublish(); p.TopicName != "p/notify" || string(p.Payload) != `{"text":"Doorbell"}` || p.Qos != 0 || p.Retain {
		t.Fatalf("clock got %s %q", p.TopicName, p.Payload)
	}
	if p := c.nextPublish(); p.TopicName != "p/sendscreen" {
		t.Fatalf("clock got %s, want p/sendscreen after the command", p.TopicName)
	}
	c.publish("p/screen", "[0,0,0]")
	r := <-res
	if r.err != nil || r.rep.Status != 200 || r.rep.Path != router.PathMQTTPlain {
		t.Fatalf("answer %+v %v", r.rep, r.err)
	}
	if string(r.rep.Body) != `{"confirmed":"screen","ok":true}` {
		t.Fatalf("body %s", r.rep.Body)
	}
}

// Two webhooks in flight: the clock's screens confirm them in order.
func TestAWTRIX3ScreensConfirmInOrder(t *testing.T) {
	rl := start(t)
	tok := wire.NewToken()
	c := clock3(t, rl, tok)
	first := rl.async(tok, "notify", `{"text":"one"}`)
	c.nextPublish()
	c.nextPublish()
	second := rl.async(tok, "notify", `{"text":"two"}`)
	c.nextPublish()
	c.nextPublish()
	c.publish("p/screen", "[1]")
	if r := <-first; r.rep.Status != 200 {
		t.Fatalf("first: %+v %v", r.rep, r.err)
	}
	select {
	case r := <-second:
		t.Fatalf("second answered before its screen: %+v", r)
	default:
	}
	c.publish("p/screen", "[2]")
	if r := <-second; r.rep.Status != 200 {
		t.Fatalf("second: %+v %v", r.rep, r.err)
	}
}

func TestAckSent(t *testing.T) {
	rl := start(t, func(c *Config, _ *session.Config) { c.Ack = AckSent })
	tok := wire.NewToken()
	c := clock3(t, rl, tok)
	res := rl.async(tok, "notify", `{"text":"x"}`)
	c.nextPublish()
	r := <-res
	if r.rep.Status != 200 || string(r.rep.Body) != `{"confirmed":"sent","ok":true}` {
		t.Fatalf("answer %d %s %v", r.rep.Status, r.rep.Body, r.err)
	}
}

func TestNGResult(t *testing.T) {
	rl := start(t)
	tok := wire.NewToken()
	c := dial(t, rl.addr)
	c.connect(tok)
	if codes := c.subscribe("ng/cmd/#"); codes[0] != 0 {
		t.Fatalf("SUBACK %v", codes)
	}
	res := rl.async(tok, "notify", `{"text":"x","durationMs":1000}`)
	if p := c.nextPublish(); p.TopicName != "ng/cmd/notify" {
		t.Fatalf("clock got %s", p.TopicName)
	}
	c.publish("ng/cmd/notify/result", `{"ok":true}`)
	if r := <-res; r.rep.Status != 200 || string(r.rep.Body) != `{"clock_reply":{"ok":true},"confirmed":"result","ok":true}` {
		t.Fatalf("answer %d %s %v", r.rep.Status, r.rep.Body, r.err)
	}

	res = rl.async(tok, "notify", `{"text":"x","durationMs":-1}`)
	c.nextPublish()
	refusal := `{"ok":false,"error":{"code":"validationFailed","message":"out of range","field":"durationMs"}}`
	c.publish("ng/cmd/notify/result", refusal)
	r := <-res
	if r.rep.Status != 400 || r.code(t) != "clock_refused" {
		t.Fatalf("answer %d %s %v", r.rep.Status, r.rep.Body, r.err)
	}
	var body struct {
		ClockReply json.RawMessage `json:"clock_reply"`
	}
	json.Unmarshal(r.rep.Body, &body)
	if string(body.ClockReply) != refusal {
		t.Fatalf("clock_reply %s, want the clock's %s", body.ClockReply, refusal)
	}
}

func TestStatsFromTheClocksPublish(t *testing.T) {
	rl := start(t)
	tok := wire.NewToken()
	c := clock3(t, rl, tok)
	c.subscribe("p/sleep") // any later subscription of the prefix is granted
	res := rl.async(tok, "stats", "")
	c.publish("p/stats", `{"bat":97,"lux":12}`) // the first stats answers the waiting read
	if r := <-res; r.rep.Status != 200 || string(r.rep.Body) != `{"bat":97,"lux":12}` {
		t.Fatalf("answer %d %s %v", r.rep.Status, r.rep.Body, r.err)
	}
	c.publish("p/stats", `{"bat":96,"lux":12}`)
	// The publish and the next read race: wait for the stats to land.
	waitFor(t, func() bool {
		r, _ := rl.deliver(tok, "stats", "")
		return string(r.Body) == `{"bat":96,"lux":12}`
	})
}

func TestDisruptiveModes(t *testing.T) {
	rl := start(t)
	tok := wire.NewToken()
	c := dial(t, rl.addr)
	c.connect(tok)
	c.subscribe("p/reboot")
	r, err := rl.deliver(tok, "reboot", "")
	if err != nil || r.Status != 403 || r.Path != router.PathMQTTPlain {
		t.Fatalf("reboot: %d %s %v", r.Status, r.Body, err)
	}

	rl = start(t, func(c *Config, _ *session.Config) { c.AllowDisruptive, c.Ack = true, AckSent })
	c = dial(t, rl.addr)
	c.connect(tok)
	c.subscribe("p/reboot")
	res := rl.async(tok, "reboot", "")
	if p := c.nextPublish(); p.TopicName != "p/reboot" {
		t.Fatalf("clock got %s", p.TopicName)
	}
	if r := <-res; r.rep.Status != 200 {
		t.Fatalf("reboot allowed: %d %s %v", r.rep.Status, r.rep.Body, r.err)
	}
}

func TestModeWithoutTopic(t *testing.T) {
	rl := start(t)
	tok := wire.NewToken()
	clock3(t, rl, tok)
	r, err := rl.deliver(tok, "loop", "")
	if err != nil || r.Status != 400 {
		t.Fatalf("loop on AWTRIX 3 over MQTT: %d %s %v", r.Status, r.Body, err)
	}
}

// A clock that has not subscribed to a mode's topic is told so once it is
// past subscribing, not left to the webhook's deadline.
func TestNotSubscribed(t *testing.T) {
	rl := start(t)
	tok := wire.NewToken()
	c := dial(t, rl.addr)
	c.connect(tok)
	c.subscribe("p/notify")
	r, err := rl.deliver(tok, "power", `{"power":false}`)
	if err != nil || r.Status != 502 || (result{r, err}).code(t) != "not_subscribed" {
		t.Fatalf("power: %d %s %v", r.Status, r.Body, err)
	}
}

// A second CONNECT with the token, on another connection, replaces the
// first; the first connection is closed.
func TestTakeover(t *testing.T) {
	rl := start(t)
	tok := wire.NewToken()
	old := clock3(t, rl, tok)
	clock3(t, rl, tok)
	old.closed()
	waitFor(t, func() bool { return testutil.ToFloat64(rl.srv.m.closed[closeReplaced]) == 1 })
	// The replaced session leaves once its connection's goroutine has seen
	// the close: the count comes down to one, and stays there.
	waitFor(t, func() bool { return rl.sess.Len() == 1 })
}
