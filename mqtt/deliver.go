package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/pixelrelay/relay/awtrix"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
)

// Outcomes of relay_mqtt_webhooks_total.
const (
	ackScreen   = "screen"   // AWTRIX 3: the screen after the command came
	ackResult   = "result"   // NG: the clock's {"ok":true}
	ackSent     = "sent"     // written; nothing to wait for (--mqtt-ack sent, or no sendscreen subscribed)
	ackState    = "state"    // a read answered from the clock's publishes
	ackTimeout  = "timeout"  // no confirmation in time
	ackRefused  = "refused"  // NG: the clock's {"ok":false,...}
	ackRejected = "rejected" // never sent: no topic, not allowed, too large, not subscribed
)

// maxWaiting bounds, per topic, the deliveries waiting for a clock's
// publish, the ones whose webhook already ended included: they keep their
// place so that the next publish confirms the right command. Past it the
// oldest is forgotten.
const maxWaiting = 1024

// Deliver implements session.Link: the message becomes one PUBLISH under
// the clock's prefix (awtrix.PlanMQTT), or a read of what the clock
// published, and the answer says what confirmed it. Every answer carries
// the path (router.Reply.Path). A message is never written after ctx has
// ended; once written, a QoS 0 publish cannot be taken back, and an answer
// without confirmation says that it may still be shown.
func (c *conn) Deliver(ctx context.Context, m router.Message) (router.Reply, error) {
	d, prefix, ok := c.waitDialect(ctx)
	if ctx.Err() != nil {
		return c.notSent(ctx)
	}
	if !ok {
		return c.rejected(http.StatusBadGateway, "not_subscribed", "the clock has not subscribed to any topic the relay knows (AWTRIX 3's or AWTRIX NG's)")
	}
	cmd, err := awtrix.PlanMQTT(d, prefix, wire.Message{Mode: m.Mode, Query: m.Query, Body: m.Body}, awtrix.MQTTOptions{})
	if err != nil {
		status, body := awtrix.ErrorReply(err)
		c.srv.m.acks[ackRejected].Inc()
		return c.reply(status, body), nil
	}
	if cmd.Disruptive && !c.srv.cfg.AllowDisruptive {
		return c.rejected(http.StatusForbidden, "forbidden", fmt.Sprintf("mode %q is refused for a clock on MQTT; the relay's operator can allow it (--mqtt-allow-disruptive)", m.Mode))
	}
	if cmd.Topic == "" {
		return c.readState(ctx, cmd)
	}
	if !c.waitSubscribed(ctx, cmd.Topic) {
		if ctx.Err() != nil {
			return c.notSent(ctx)
		}
		return c.rejected(http.StatusBadGateway, "not_subscribed", fmt.Sprintf("the clock has not subscribed to %s under its prefix", cmd.Topic))
	}
	// What confirms the command: an NG clock's result; an AWTRIX 3 clock's
	// screen after a sendscreen (if it subscribed to sendscreen); the
	// screen or state a read asks for.
	var confirm, answer string
	sendscreen := false
	switch {
	case d == awtrix.DialectNG:
		confirm = cmd.Topic + "/result"
		answer = cmd.State
	case cmd.State != "":
		answer = cmd.State
	case c.srv.cfg.Ack == AckScreen && c.subscribed("sendscreen"):
		confirm, sendscreen = "screen", true
	}

	// The waiters are queued and the packets written under one lock, so
	// that the clock's answers, which come in the order of its commands,
	// meet their waiters in the same order.
	c.wmu.Lock()
	if err := ctx.Err(); err != nil {
		c.wmu.Unlock()
		return c.notSent(ctx)
	}
	var wc, wa *waiter
	if confirm != "" {
		wc = c.await(confirm)
	}
	if answer != "" {
		wa = c.await(answer)
	}
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.TopicName, pub.Payload = prefix+"/"+cmd.Topic, cmd.Payload
	err = c.writeLocked(pub)
	if err == nil && sendscreen {
		pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		pub.TopicName = prefix + "/sendscreen"
		err = c.writeLocked(pub)
	}
	c.wmu.Unlock()
	if err != nil {
		return router.Reply{}, router.ErrGone // the connection is closing
	}
	if wc == nil && wa == nil {
		c.srv.m.acks[ackSent].Inc()
		return c.jsonReply(http.StatusOK, map[string]any{"ok": true, "confirmed": "sent"}), nil
	}

	timer := time.NewTimer(c.srv.cfg.AckTimeout)
	defer timer.Stop()
	var result, screen []byte
	for (wc != nil && result == nil) || (wa != nil && screen == nil) {
		select {
		case p := <-chanOf(wc):
			result, wc = nonNil(p), nil
		case p := <-chanOf(wa):
			screen, wa = nonNil(p), nil
		case <-ctx.Done():
			abandon(wc, wa)
			if err := router.Canceled(ctx); err != nil {
				return router.Reply{}, err
			}
			return c.unconfirmed(), nil
		case <-timer.C:
			abandon(wc, wa)
			return c.unconfirmed(), nil
		case <-c.done:
			return c.gone(), nil
		}
		if wa == nil && screen != nil && d == awtrix.DialectNG {
			// NG: the state answers a read; its result adds nothing.
			abandon(wc, nil)
			break
		}
	}
	switch {
	case screen != nil:
		c.srv.m.acks[ackState].Inc()
		return c.reply(http.StatusOK, asJSON(screen)), nil
	case d == awtrix.DialectNG:
		return c.ngResult(result), nil
	}
	c.srv.m.acks[ackScreen].Inc()
	return c.jsonReply(http.StatusOK, map[string]any{"ok": true, "confirmed": "screen"}), nil
}

// ngResult answers with an NG clock's result: {"ok":true} is 200, an error
// (a validation error, an unknown app) 400 with the clock's own error.
func (c *conn) ngResult(result []byte) router.Reply {
	var r struct {
		OK bool `json:"ok"`
	}
	if json.Unmarshal(result, &r) == nil && r.OK {
		c.srv.m.acks[ackResult].Inc()
		return c.jsonReply(http.StatusOK, map[string]any{"ok": true, "confirmed": "result", "clock_reply": asJSON(result)})
	}
	c.srv.m.acks[ackRefused].Inc()
	return c.jsonReply(http.StatusBadRequest, map[string]any{"error": "the clock refused the command", "code": "clock_refused", "clock_reply": asJSON(result)})
}

// readState answers a read from the clock's latest publish of cmd.State,
// waiting for its first one if none came yet.
func (c *conn) readState(ctx context.Context, cmd awtrix.Command) (router.Reply, error) {
	c.mu.Lock()
	p, ok := c.state[cmd.State]
	var w *waiter
	if !ok {
		w = c.awaitLocked(cmd.State)
	}
	c.mu.Unlock()
	if !ok {
		timer := time.NewTimer(c.srv.cfg.AckTimeout)
		defer timer.Stop()
		select {
		case p = <-w.ch:
		case <-ctx.Done():
			w.gone.Store(true)
			if err := router.Canceled(ctx); err != nil {
				return router.Reply{}, err
			}
			return c.noState(), nil
		case <-timer.C:
			w.gone.Store(true)
			return c.noState(), nil
		case <-c.done:
			return c.gone(), nil
		}
	}
	if cmd.Field != "" {
		var doc map[string]json.RawMessage
		json.Unmarshal(p, &doc)
		f, ok := doc[cmd.Field]
		if !ok {
			return c.rejected(http.StatusBadGateway, "clock_error", fmt.Sprintf("the clock's %s has no %q", cmd.State, cmd.Field))
		}
		p = f
	}
	c.srv.m.acks[ackState].Inc()
	return c.reply(http.StatusOK, asJSON(p)), nil
}

// gone answers a delivery whose clock disconnected before it answered.
func (c *conn) gone() router.Reply {
	c.srv.m.acks[ackTimeout].Inc()
	return c.jsonReply(http.StatusBadGateway, map[string]any{"error": "the clock disconnected before it answered; a command may have been shown", "code": "clock_gone"})
}

func (c *conn) noState() router.Reply {
	c.srv.m.acks[ackTimeout].Inc()
	return c.jsonReply(http.StatusGatewayTimeout, map[string]any{"error": "the clock has not published that state yet", "code": "clock_timeout"})
}

// unconfirmed answers a command that was written but not confirmed.
func (c *conn) unconfirmed() router.Reply {
	c.srv.m.acks[ackTimeout].Inc()
	return c.jsonReply(http.StatusGatewayTimeout, map[string]any{
		"error": "the clock did not confirm in time; the command was sent and may still be shown", "code": "clock_timeout", "confirmed": "none"})
}

// notSent answers a message whose time ran out before it was written: it
// never will be.
func (c *conn) notSent(ctx context.Context) (router.Reply, error) {
	if err := router.Canceled(ctx); err != nil {
		return router.Reply{}, err
	}
	return router.Reply{}, router.ErrTimeout
}

func (c *conn) rejected(status int, code, msg string) (router.Reply, error) {
	c.srv.m.acks[ackRejected].Inc()
	return c.jsonReply(status, map[string]any{"error": msg, "code": code}), nil
}

func (c *conn) jsonReply(status int, v any) router.Reply {
	b, err := json.Marshal(v)
	if err != nil {
		panic("mqtt: marshal of a reply: " + err.Error())
	}
	return c.reply(status, b)
}

func (c *conn) reply(status int, body []byte) router.Reply {
	return router.Reply{Status: status, Body: body, Path: c.path}
}

// asJSON is b when it is JSON, else b as a JSON string (AWTRIX 3's
// stats/currentApp is plain text).
func asJSON(b []byte) json.RawMessage {
	if b = bytes.TrimSpace(b); json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// await queues a waiter for the clock's next publish of topic (below the
// prefix).
func (c *conn) await(topic string) *waiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.awaitLocked(topic)
}

func (c *conn) awaitLocked(topic string) *waiter {
	if c.waiting == nil {
		c.waiting = make(map[string][]*waiter)
	}
	w := &waiter{ch: make(chan []byte, 1)}
	q := append(c.waiting[topic], w)
	if len(q) > maxWaiting {
		q = q[1:]
	}
	c.waiting[topic] = q
	return w
}

// waitDialect waits until the clock has subscribed to a topic that names
// its dialect, or until it is past subscribing (subscribeGrace) or ctx
// ends.
func (c *conn) waitDialect(ctx context.Context) (awtrix.Dialect, string, bool) {
	var d awtrix.Dialect
	var prefix string
	ok := c.waitFor(ctx, func() bool {
		d, prefix = c.dialect, c.prefix
		return d != awtrix.DialectNone
	})
	return d, prefix, ok
}

// waitSubscribed waits until the clock has subscribed to topic (below its
// prefix), as waitDialect does.
func (c *conn) waitSubscribed(ctx context.Context, topic string) bool {
	return c.waitFor(ctx, func() bool { return c.subscribedLocked(topic) })
}

func (c *conn) waitFor(ctx context.Context, cond func() bool) bool {
	for {
		c.mu.Lock()
		ok := cond()
		changed, grace := c.subs, time.Until(c.lastSub.Add(subscribeGrace))
		c.mu.Unlock()
		if ok {
			return true
		}
		if grace <= 0 {
			return false
		}
		t := time.NewTimer(grace)
		select {
		case <-changed:
			t.Stop()
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		case <-c.done:
			t.Stop()
			return false
		}
	}
}

func (c *conn) subscribed(topic string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subscribedLocked(topic)
}

func (c *conn) subscribedLocked(topic string) bool {
	full := c.prefix + "/" + topic
	for _, f := range c.filters {
		if matches(f, full) {
			return true
		}
	}
	return false
}

// chanOf is w's channel, or nil (which never receives) for no waiter.
func chanOf(w *waiter) <-chan []byte {
	if w == nil {
		return nil
	}
	return w.ch
}

// nonNil keeps an empty publish distinct from none.
func nonNil(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}

func abandon(ws ...*waiter) {
	for _, w := range ws {
		if w != nil {
			w.gone.Store(true)
		}
	}
}
