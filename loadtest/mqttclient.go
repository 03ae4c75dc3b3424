package loadtest

// This file is the swarm's MQTT clock on the wire: a stock AWTRIX 3 clock
// as its broker (the relay, or mosquitto for the comparison) sees it,
// written on paho's packet codec alone. Paho's client runs several
// goroutines and buffers per connection; a swarm of thousands of clocks
// in one process needs less: here a clock is one goroutine that reads (the
// swarm's device goroutine), a timer that pings, and a few hundred bytes
// of buffers.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// The clock's MQTT settings, as the firmware has them, and the suite's
// bounds on its broker.
const (
	// mqttKeepAlive is PubSubClient's MQTT_KEEPALIVE, which AWTRIX 3
	// keeps: the CONNECT asks for it, and the clock pings this often.
	mqttKeepAlive = 15 * time.Second
	// mqttReadTimeout: a broker answers every PINGREQ, so a clock that
	// heard nothing for two keep-alives has lost its broker.
	mqttReadTimeout = 2 * mqttKeepAlive
	// mqttLoginTimeout bounds a login: TCP connect, CONNECT, CONNACK and
	// every SUBACK.
	mqttLoginTimeout = 10 * time.Second
	// mqttWriteTimeout bounds one packet's write.
	mqttWriteTimeout = 10 * time.Second
	// mqttMaxPacket bounds what a clock reads after a fixed header. The
	// firmware drops a packet over 8 KiB (awtrix.MaxClockPacket); the
	// suite takes more, so that the relay's own bound is what is tested.
	mqttMaxPacket = 64 << 10
	// mqttReadBuffer is each clock's read buffer: headers and small
	// packets are read through it, a larger body straight into its slice.
	mqttReadBuffer = 256
	// mqttUser is the clock's MQTT user name: any will do, the password
	// is the device token.
	mqttUser = "awtrix"
)

// mqttFilters3 are AWTRIX 3's subscriptions below its prefix, in its
// order, one SUBSCRIBE each at QoS 0 (MQTTManager.cpp's onMqttConnected;
// nextapp is there twice). The firmware waits 30 ms after each; the swarm
// sends them back to back, so that a swarm logs in at the brokers' pace,
// not the firmware's.
var mqttFilters3 = []string{
	"/brightness", "/notify/dismiss", "/notify", "/custom/#", "/switch", "/settings",
	"/previousapp", "/nextapp", "/doupdate", "/nextapp", "/apps", "/power", "/sleep",
	"/indicator1", "/indicator2", "/indicator3", "/timeformat", "/dateformat", "/reboot",
	"/moodlight", "/sound", "/rtttl", "/sendscreen", "/r2d2",
}

// mqttScreen is the clock's answer on P/screen to P/sendscreen: a 32x8
// screen of dark pixels, the JSON array of 0xRRGGBB the firmware sends
// (DisplayManager::ledsAsJson), here all zeros.
var mqttScreen = func() []byte {
	b := []byte{'['}
	for i := range 256 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '0')
	}
	return append(b, ']')
}()

// Errors of a clock's connection.
var (
	// errMQTTProtocol: the broker sent what a broker may not, or a
	// packet over mqttMaxPacket.
	errMQTTProtocol = errors.New("loadtest: MQTT protocol error")
	// errMQTTSubscribe: the broker refused a subscription (SUBACK 0x80).
	errMQTTSubscribe = errors.New("loadtest: MQTT subscription refused")
)

// connackError is a CONNACK that refused the login.
type connackError struct{ code byte }

func (e *connackError) Error() string {
	return fmt.Sprintf("loadtest: MQTT CONNACK refused the login: %d (%s)", e.code, packets.ConnackReturnCodes[e.code])
}

// mqttIdentity is what a clock logs in as.
type mqttIdentity struct {
	clientID string
	password string // the device token
	prefix   string // its topics' prefix, AWTRIX 3's "awtrix_XXXXXX"
}

// mqttLogin is how long a login took, from the start of the TCP connect.
type mqttLogin struct {
	connack time.Duration // to the CONNACK: what a stock clock blocks on
	ready   time.Duration // to the last SUBACK: webhooks reach it from here
}

// mqttHandler takes each PUBLISH the broker sends a clock, on the clock's
// reading goroutine, in order: it may block, as the firmware does, and
// the clock reads nothing meanwhile.
type mqttHandler func(c *mqttConn, topic string, payload []byte)

// mqttConn is one clock's connection to its broker.
type mqttConn struct {
	nc     net.Conn      // static
	prefix string        // static
	handle mqttHandler   // static
	br     *bufio.Reader // owned by the reading goroutine
	// stopCtx ends the watch that closes the connection with the swarm's
	// context; static.
	stopCtx func() bool

	wmu    sync.Mutex  // serializes writes, one packet at a time; guards the fields below
	pinger *time.Timer // pings every mqttKeepAlive once logged in
	closed bool

	closeOnce sync.Once
}

// dialMQTT logs a clock in at addr: TCP, CONNECT (MQTT 3.1.1, clean
// session, keep-alive mqttKeepAlive, the token as password), CONNACK,
// then AWTRIX 3's SUBSCRIBEs and their SUBACKs. Publishes that arrive
// before the last SUBACK go to h already. Once it returns, the clock pings
// on its own and Serve reads; ctx ending closes the connection.
func dialMQTT(ctx context.Context, addr string, id mqttIdentity, h mqttHandler) (*mqttConn, mqttLogin, error) {
	start := time.Now()
	var login mqttLogin
	dctx, cancel := context.WithTimeout(ctx, mqttLoginTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, login, err
	}
	c := &mqttConn{nc: nc, prefix: id.prefix, handle: h, br: bufio.NewReaderSize(nc, mqttReadBuffer)}
	c.stopCtx = context.AfterFunc(ctx, c.close)
	fail := func(err error) (*mqttConn, mqttLogin, error) {
		c.close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, login, err
	}
	nc.SetDeadline(start.Add(mqttLoginTimeout))

	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion = "MQTT", 4
	cp.CleanSession = true
	cp.Keepalive = uint16(mqttKeepAlive / time.Second)
	cp.ClientIdentifier = id.clientID
	cp.UsernameFlag, cp.Username = true, mqttUser
	cp.PasswordFlag, cp.Password = true, []byte(id.password)
	if err := cp.Write(nc); err != nil {
		return fail(err)
	}
	p, err := c.read()
	if err != nil {
		return fail(err)
	}
	ack, ok := p.(*packets.ConnackPacket)
	if !ok {
		return fail(fmt.Errorf("%w: %s before CONNACK", errMQTTProtocol, p.String()))
	}
	if ack.ReturnCode != packets.Accepted {
		return fail(&connackError{ack.ReturnCode})
	}
	login.connack = time.Since(start)

	// One SUBSCRIBE per filter, as PubSubClient sends them; message ids
	// 1..n, each answered by its SUBACK.
	var out bytes.Buffer
	for i, f := range mqttFilters3 {
		sp := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
		sp.MessageID = uint16(i + 1)
		sp.Topics, sp.Qoss = []string{id.prefix + f}, []byte{0}
		sp.Write(&out)
	}
	if _, err := nc.Write(out.Bytes()); err != nil {
		return fail(err)
	}
	for acked := 0; acked < len(mqttFilters3); {
		p, err := c.read()
		if err != nil {
			return fail(err)
		}
		switch p := p.(type) {
		case *packets.SubackPacket:
			if p.MessageID == 0 || int(p.MessageID) > len(mqttFilters3) || len(p.ReturnCodes) != 1 {
				return fail(fmt.Errorf("%w: SUBACK for message %d", errMQTTProtocol, p.MessageID))
			}
			if p.ReturnCodes[0] == 0x80 {
				return fail(fmt.Errorf("%w: %s", errMQTTSubscribe, mqttFilters3[p.MessageID-1]))
			}
			acked++
		default:
			if err := c.take(p); err != nil {
				return fail(err)
			}
		}
	}
	login.ready = time.Since(start)
	nc.SetDeadline(time.Time{})
	c.wmu.Lock()
	if !c.closed {
		c.pinger = time.AfterFunc(mqttKeepAlive, c.ping)
	}
	c.wmu.Unlock()
	return c, login, nil
}

// Serve reads the broker's packets until the connection ends, and returns
// why.
func (c *mqttConn) Serve() error {
	for {
		c.nc.SetReadDeadline(time.Now().Add(mqttReadTimeout))
		p, err := c.read()
		if err != nil {
			return err
		}
		if err := c.take(p); err != nil {
			return err
		}
	}
}

// take is a logged-in clock's answer to a packet.
func (c *mqttConn) take(p packets.ControlPacket) error {
	switch p := p.(type) {
	case *packets.PublishPacket:
		c.handle(c, p.TopicName, p.Payload)
		if p.Qos == 1 {
			ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
			ack.MessageID = p.MessageID
			return c.write(ack)
		}
		return nil
	case *packets.PingrespPacket:
		return nil
	}
	return fmt.Errorf("%w: unexpected %s", errMQTTProtocol, p.String())
}

// Publish sends a QoS 0 PUBLISH: the clock's answers (P/screen).
func (c *mqttConn) Publish(topic string, payload []byte) error {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Payload = topic, payload
	return c.write(p)
}

// ping sends PINGREQ and sets the next one: the pinger's timer.
func (c *mqttConn) ping() {
	if c.write(packets.NewControlPacket(packets.Pingreq)) != nil {
		return // the write closed nothing: Serve's read deadline will
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.closed {
		c.pinger.Reset(mqttKeepAlive)
	}
}

// write sends one packet, bounded by mqttWriteTimeout.
func (c *mqttConn) write(p packets.ControlPacket) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	c.nc.SetWriteDeadline(time.Now().Add(mqttWriteTimeout))
	return p.Write(c.nc)
}

// close ends the connection: Serve returns, the pinger stops. It is
// idempotent. The socket is closed before the write lock is taken, so
// that a write stuck on a broker that reads nothing cannot hold it up.
func (c *mqttConn) close() {
	c.closeOnce.Do(func() {
		c.nc.Close()
		c.stopCtx()
		c.wmu.Lock()
		c.closed = true
		if c.pinger != nil {
			c.pinger.Stop()
		}
		c.wmu.Unlock()
	})
}

// read reads one packet, its length bounded before anything is allocated
// (paho's own ReadPacket allocates whatever length a peer claims).
func (c *mqttConn) read() (packets.ControlPacket, error) {
	b, err := c.br.ReadByte()
	if err != nil {
		return nil, err
	}
	n, shift := 0, 0
	for i := 0; ; i++ {
		if i == 4 {
			return nil, fmt.Errorf("%w: remaining length over four bytes", errMQTTProtocol)
		}
		lb, err := c.br.ReadByte()
		if err != nil {
			return nil, noEOF(err)
		}
		n |= int(lb&0x7f) << shift
		if lb&0x80 == 0 {
			break
		}
		shift += 7
	}
	if n > mqttMaxPacket {
		return nil, fmt.Errorf("%w: a %d-byte packet", errMQTTProtocol, n)
	}
	cp, err := packets.NewControlPacketWithHeader(packets.FixedHeader{
		MessageType: b >> 4, Dup: b&0x08 != 0, Qos: (b >> 1) & 0x03, Retain: b&0x01 != 0, RemainingLength: n,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMQTTProtocol, err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		return nil, noEOF(err)
	}
	if err := cp.Unpack(&bodyReader{b: body}); err != nil {
		return nil, fmt.Errorf("%w: a malformed %s", errMQTTProtocol, packets.PacketNames[b>>4])
	}
	return cp, nil
}

// bodyReader is a bytes.Reader for paho's decoders, but for an empty
// Read: it reads nothing and no error, where a bytes.Reader at its end
// says io.EOF and fails a PUBLISH with an empty payload (a sendscreen).
// The brokers are loopback's, the relay and mosquitto: a short read is
// not checked field by field (the relay's own reader does that).
type bodyReader struct{ b []byte }

func (r *bodyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// noEOF: an EOF inside a packet is a cut one.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
