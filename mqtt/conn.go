package mqtt

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/pixelrelay/relay/awtrix"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
)

// maxFilters bounds one connection's subscriptions: AWTRIX 3 makes 24.
const maxFilters = 64

// subscribeGrace is how long after its last SUBSCRIBE (or its CONNACK) a
// clock may still be subscribing: a webhook for a topic it has not
// subscribed to waits that long before it is answered not_subscribed.
// AWTRIX 3 subscribes 24 topics 30 ms apart.
const subscribeGrace = 2 * time.Second

// conn is one MQTT connection: a clock, or any MQTT 3.1.1 client that logs
// in with a device token. It implements session.Link.
type conn struct {
	srv   *Server   // static
	nc    net.Conn  // static
	path  string    // router.PathMQTTPlain or PathMQTTTLS; static
	start time.Time // accepted; static
	br    *bufio.Reader
	// keepAlive is how long the clock may be silent: 1.5 x its keep-alive,
	// held to MaxKeepAlive. Set by login, then owned by readLoop.
	keepAlive time.Duration
	// done is closed when the connection is over: whoever waits for the
	// clock's answer stops.
	done chan struct{}

	wmu sync.Mutex // serializes writes: a deadline and one Write per packet

	closeOnce sync.Once

	mu      sync.Mutex     // guards the fields below
	dialect awtrix.Dialect // from the first SUBSCRIBE the relay granted
	prefix  string         // the clock's topic prefix, with the dialect
	filters []string       // granted subscriptions
	// subs is closed and replaced on every change of filters, and lastSub
	// is when: a delivery waiting for a subscription looks again.
	subs    chan struct{}
	lastSub time.Time
	// state holds the clock's latest publish of each topic reads are
	// answered from, below the prefix; in memory while it is connected.
	state map[string][]byte
	// waiting holds, by topic below the prefix, the deliveries waiting for
	// the clock's next publish there (a screen, an NG result), oldest
	// first.
	waiting map[string][]*waiter
}

// waiter is one delivery waiting for a publish.
type waiter struct {
	ch   chan []byte // buffered: the reader never blocks on it
	gone atomic.Bool // its delivery stopped waiting
}

func newConn(s *Server, nc net.Conn, path string, now time.Time) *conn {
	return &conn{srv: s, nc: nc, path: path, start: now, br: bufio.NewReaderSize(nc, 512),
		done: make(chan struct{}), subs: make(chan struct{}), lastSub: now}
}

// Kind implements session.Link.
func (c *conn) Kind() transport.Kind { return transport.KindMQTT }

// Close implements session.Link: a takeover or the relay's drain.
func (c *conn) Close(r wire.Reason) {
	if r == wire.ReasonReplaced {
		c.closeWith(closeReplaced)
		return
	}
	c.closeWith(closeDrain)
}

// closeWith closes the connection, counting why; only the first call
// counts, and "" counts nothing (the peer's own close).
func (c *conn) closeWith(reason string) {
	c.closeOnce.Do(func() {
		if reason != "" {
			c.srv.m.closed[reason].Inc()
			c.srv.log.Debug("mqtt connection closed", "reason", reason)
		}
		c.nc.Close()
	})
}

// serve runs the connection to its end. full: the listener is at
// MaxConns, and the clock is told so.
func (c *conn) serve(full bool) {
	defer close(c.done)
	defer c.closeWith("")
	ls := c.login(full)
	if ls == nil {
		return
	}
	defer ls.End()
	c.closeWith(c.readLoop())
}

// login reads the CONNECT, logs the device in and answers CONNACK. It
// returns nil when the connection is to close.
func (c *conn) login(full bool) *session.LinkSession {
	cfg := &c.srv.cfg
	c.nc.SetReadDeadline(c.start.Add(cfg.ConnectTimeout))
	cp, err := readPacket(c.br, cfg.MaxPacket)
	if err != nil {
		c.closeWith(readCloseReason(err, closeConnectTimeout))
		return nil
	}
	p, ok := cp.(*packets.ConnectPacket)
	if !ok {
		c.closeWith(closeProtocol) // §3.1: the first packet is CONNECT
		return nil
	}
	defer clear(p.Password) // the token's only copy in relay memory
	switch code := p.Validate(); {
	case code == packets.ErrProtocolViolation:
		// A protocol name other than MQTT (or MQIsdp), or the reserved
		// bit: §3.1.2.1 closes without a CONNACK.
		c.closeWith(closeProtocol)
		return nil
	case code != packets.Accepted:
		c.refuse(code) // 1: a level other than 4; 2: no client id, no clean session; 4: a password without a user name
		return nil
	case p.ProtocolName != "MQTT":
		c.refuse(packets.ErrRefusedBadProtocolVersion) // MQIsdp, MQTT 3.1: the relay speaks 3.1.1 only
		return nil
	case full:
		c.refuse(packets.ErrRefusedServerUnavailable)
		return nil
	case !p.PasswordFlag || len(p.Password) == 0:
		c.refuse(packets.ErrRefusedBadUsernameOrPassword)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ConnectTimeout)
	defer cancel()
	ls, r, _ := c.srv.sess.Join(ctx, c, p.Password)
	if ls == nil {
		if r == wire.ReasonToken {
			c.refuse(packets.ErrRefusedBadUsernameOrPassword)
		} else {
			c.refuse(packets.ErrRefusedServerUnavailable) // draining, full, limited
		}
		return nil
	}
	ka := time.Duration(p.Keepalive) * time.Second
	if ka == 0 || ka > cfg.MaxKeepAlive {
		ka = cfg.MaxKeepAlive
	}
	c.keepAlive = ka + ka/2 // §3.1.2.10
	c.mu.Lock()
	c.lastSub = time.Now()
	c.mu.Unlock()
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	if err := c.write(ack); err != nil {
		ls.End()
		return nil
	}
	c.srv.m.connack.Observe(time.Since(c.start).Seconds())
	return ls
}

// refuse answers CONNACK with code and closes (§3.2.2.3).
func (c *conn) refuse(code byte) {
	c.srv.m.refused[code].Inc()
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	ack.ReturnCode = code
	c.write(ack)
	c.closeWith("")
}

// readLoop serves the packets after CONNECT until the connection ends,
// and returns the reason to count ("" for the peer's own close).
func (c *conn) readLoop() string {
	pings := limit.NewBucket(c.srv.cfg.Pings)
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.keepAlive))
		cp, err := readPacket(c.br, c.srv.cfg.MaxPacket)
		if err != nil {
			return readCloseReason(err, closeKeepAlive)
		}
		switch p := cp.(type) {
		case *packets.PublishPacket:
			if p.Qos == 2 {
				return closeProtocol // the relay takes no QoS 2
			}
			c.published(p.TopicName, p.Payload)
			if p.Qos == 1 {
				ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
				ack.MessageID = p.MessageID
				if err := c.write(ack); err != nil {
					return writeCloseReason(err)
				}
			}
		case *packets.SubscribePacket:
			ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			ack.MessageID, ack.ReturnCodes = p.MessageID, c.subscribe(p.Topics)
			if err := c.write(ack); err != nil {
				return writeCloseReason(err)
			}
		case *packets.UnsubscribePacket:
			c.unsubscribe(p.Topics)
			ack := packets.NewControlPacket(packets.Unsuback).(*packets.UnsubackPacket)
			ack.MessageID = p.MessageID
			if err := c.write(ack); err != nil {
				return writeCloseReason(err)
			}
		case *packets.PingreqPacket:
			if !pings.Allow(time.Now()) {
				return closePingFlood
			}
			if err := c.write(packets.NewControlPacket(packets.Pingresp)); err != nil {
				return writeCloseReason(err)
			}
		case *packets.DisconnectPacket:
			return ""
		default:
			// A second CONNECT (§3.1.0-2), or a packet only a server
			// sends, or an ack of a QoS the relay never uses.
			return closeProtocol
		}
	}
}

// readCloseReason classifies a failed read; timeout is the reason a
// deadline stands for.
func readCloseReason(err error, timeout string) string {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return timeout
	case errors.Is(err, errTooLarge):
		return closeTooLarge
	case errors.Is(err, errMalformed), errors.Is(err, errUnexpect):
		return closeProtocol
	}
	return "" // the peer hung up (EOF, a reset, a close of ours)
}

func writeCloseReason(err error) string {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return closeWriteTimeout
	}
	return ""
}

// write sends one packet, bounded by WriteTimeout. A failed write closes
// the connection: half a packet cannot be taken back.
func (c *conn) write(p packets.ControlPacket) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(p)
}

func (c *conn) writeLocked(p packets.ControlPacket) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	err := p.Write(c.nc)
	if err != nil {
		c.closeWith(writeCloseReason(err))
	}
	return err
}

// subscribe grants the filters a clock may have: the first one that names
// a dialect (awtrix.DialectOf) fixes the dialect and the prefix, and every
// later one must name the same. Granted filters get QoS 0, the only one
// the relay sends; the rest 0x80 (§3.9.3).
func (c *conn) subscribe(filters []string) []byte {
	codes := make([]byte, len(filters))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range filters {
		d, prefix, ok := awtrix.DialectOf(f)
		switch {
		case !ok, c.dialect != awtrix.DialectNone && (d != c.dialect || prefix != c.prefix):
			codes[i] = 0x80
		case slices.Contains(c.filters, f):
		case len(c.filters) >= maxFilters:
			codes[i] = 0x80
		default:
			c.dialect, c.prefix = d, prefix
			c.filters = append(c.filters, f)
		}
	}
	c.changedLocked()
	return codes
}

func (c *conn) unsubscribe(filters []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.filters = slices.DeleteFunc(c.filters, func(f string) bool { return slices.Contains(filters, f) })
	c.changedLocked()
}

func (c *conn) changedLocked() {
	close(c.subs)
	c.subs = make(chan struct{})
	c.lastSub = time.Now()
}

// published takes a clock's publish: a state the relay answers reads from,
// or a confirmation a delivery waits for. Anything else (another prefix, a
// command topic, Home Assistant's discovery, a publish before the clock
// subscribed) is dropped and counted: the relay is not a broker.
func (c *conn) published(topic string, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rest, ok := strings.CutPrefix(topic, c.prefix+"/")
	if !ok || c.dialect == awtrix.DialectNone || !mayPublish(c.dialect, rest) {
		c.srv.m.dropped[dropTopic].Inc()
		return
	}
	if cachedState[rest] {
		if c.state == nil {
			c.state = make(map[string][]byte)
		}
		c.state[rest] = payload
		for _, w := range c.waiting[rest] {
			w.ch <- payload
		}
		delete(c.waiting, rest)
		return
	}
	q := c.waiting[rest]
	if len(q) == 0 {
		// A confirmation nobody asked for: a screen the clock sent on its
		// own, an NG result of a command whose webhook is over.
		c.srv.m.dropped[dropUnread].Inc()
		return
	}
	if q[0].gone.Load() {
		c.srv.m.dropped[dropUnread].Inc()
	}
	q[0].ch <- payload
	if len(q) == 1 {
		delete(c.waiting, rest)
	} else {
		c.waiting[rest] = q[1:]
	}
}

// cachedState lists the topics, below the prefix, whose latest publish
// answers a read (awtrix.Command.State with no Topic).
var cachedState = map[string]bool{
	"stats": true, "stats/effects": true, "stats/transitions": true, // AWTRIX 3
	"state/device": true, "state/settings": true, "state/capabilities": true, // NG
}

// mayPublish reports whether a clock of dialect d may publish topic (below
// its prefix): AWTRIX 3 its stats (stats, stats/...) and screen; NG its
// state (state/...), its availability and the results of its commands
// (cmd/.../result).
func mayPublish(d awtrix.Dialect, topic string) bool {
	switch d {
	case awtrix.Dialect3:
		return topic == "stats" || strings.HasPrefix(topic, "stats/") || topic == "screen"
	case awtrix.DialectNG:
		return strings.HasPrefix(topic, "state/") || topic == "availability" ||
			strings.HasPrefix(topic, "cmd/") && strings.HasSuffix(topic, "/result")
	}
	return false
}

// matches reports whether an MQTT topic filter matches topic (§4.7).
func matches(filter, topic string) bool {
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fmore || !tmore {
			// "a/#" matches "a" too (§4.7.1.2).
			return fmore == tmore || fmore && frest == "#"
		}
		filter, topic = frest, trest
	}
}
