package loadtest

// This file is the swarm's MQTT clocks (SwarmConfig.MQTTShare): each logs
// in to its node's MQTT listener as a stock AWTRIX 3 clock does
// (mqttclient.go), records every command that reaches it for the ledger,
// as the other devices do, and answers each P/sendscreen with its screen,
// which is what confirms a webhook to the relay (--mqtt-ack screen).

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// errCannotRotate: a stock clock's token is its MQTT password, set by
// hand; it has no way to rotate it over its connection.
var errCannotRotate = errors.New("loadtest: an MQTT clock cannot rotate its token")

// MQTTDevices counts the MQTT clocks.
func (s *Swarm) MQTTDevices() int {
	n := 0
	for _, d := range s.devs {
		if d.mq {
			n++
		}
	}
	return n
}

// MQTT reports whether device i is an MQTT clock: the targeter sends it
// only what AWTRIX 3 takes over MQTT.
func (s *Swarm) MQTT(i int) bool { return s.devs[i].mq }

// ConnackTimes returns the MQTT clocks' first logins' times from the
// start of the TCP connect to the CONNACK, unsorted.
func (s *Swarm) ConnackTimes() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.connacks)
}

// mqttIdentity is clock d's login with tok: a client id and prefix of its
// own, AWTRIX 3's shape ("awtrix_" and six hex digits).
func (d *simDevice) mqttIdentity(tok string) mqttIdentity {
	name := fmt.Sprintf("awtrix_%06x", d.idx)
	return mqttIdentity{clientID: name, password: tok, prefix: name}
}

// runMQTT is clock d's life, as run is a device's: log in (the first time
// inside the connect semaphore), serve, and log in again until the swarm
// closes. MQTT 3.1.1 cannot say go-away: a draining relay closes the
// connection, and the clock dials again at once (after a failed dial, on
// the next node in its order, with backoff).
func (s *Swarm) runMQTT(d *simDevice, sem chan struct{}) {
	select {
	case sem <- struct{}{}:
	case <-s.ctx.Done():
		return
	}
	release := func() {
		if sem != nil {
			<-sem
			sem = nil
		}
	}
	defer release()
	first := true
	node := d.home
	for attempt := 0; ; {
		c, login, err := dialMQTT(s.ctx, s.cfg.MQTTAddrs[node], d.mqttIdentity(*d.token.Load()), d.mqttPublished)
		if err != nil {
			if !s.dialFailed(d, &node, &attempt, err) {
				return
			}
			continue
		}
		attempt = 0
		s.connected.Add(1)
		s.onNode[node].Add(1)
		d.mc.Store(c)
		d.node.Store(int32(node))
		s.events.add(d.idx, node, evUp)
		if first {
			first = false
			s.mu.Lock()
			s.connacks = append(s.connacks, login.connack)
			s.mu.Unlock()
			s.up(d, login.ready)
			release()
		} else {
			s.reconnects.Add(1)
		}
		c.Serve()
		if d.mc.CompareAndSwap(c, nil) {
			d.node.Store(-1)
		}
		s.events.add(d.idx, node, evDown)
		s.connected.Add(-1)
		s.onNode[node].Add(-1)
		c.close()
		if s.ctx.Err() != nil {
			return
		}
	}
}

// reconnectMQTT hangs up clock d's connection; its loop logs in again.
func (s *Swarm) reconnectMQTT(d *simDevice) bool {
	c := d.mc.Load()
	if c == nil {
		return false
	}
	s.events.add(d.idx, int(d.node.Load()), evHangup)
	c.close()
	return true
}

// mqttPublished is clock d's firmware: a sendscreen is answered with the
// screen after the swarm's ack delay (the clock handles its messages in
// order, so the relay takes the screen for the confirmation of every
// command before it); anything else is a command, counted for the ledger.
func (d *simDevice) mqttPublished(c *mqttConn, topic string, payload []byte) {
	s := d.s
	if rest, ok := strings.CutPrefix(topic, c.prefix+"/"); ok && rest == "sendscreen" {
		s.inHandler.Add(1)
		defer s.inHandler.Add(-1)
		if delay := s.ackDelay(); delay > 0 {
			sleepCtx(s.ctx, delay)
		}
		c.Publish(c.prefix+"/screen", mqttScreen)
		return
	}
	d.received(payload)
}
