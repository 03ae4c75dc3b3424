// Package mqttclock simulates an AWTRIX clock talking MQTT, on a real
// third-party MQTT client (Eclipse Paho), for the tests of the relay's MQTT
// device transport: the relay plays the clock's broker, and these clocks
// behave on the wire as the firmwares do.
//
// Two firmwares are modelled, from their sources:
//
//   - AWTRIX 3 (Blueforcer/awtrix3, src/MQTTManager.cpp, PubSubClient under
//     arduino-home-assistant): subscribes one topic at a time to its
//     command list under the prefix P, publishes P/stats/effects,
//     P/stats/transitions and P/stats/device "online" (its last will is
//     P/stats/device "offline"), P/stats every 10 s, and P/screen in answer
//     to P/sendscreen.
//   - AWTRIX NG (Blueforcer/awtrix-ng, src/transport/mqtt): subscribes
//     P/cmd/#, publishes its retained state topics and P/availability
//     "online" (will "offline", retained), and answers every command on
//     "<command topic>/result"; P/cmd/screen/get is answered with
//     P/state/screen.
//
// Both speak MQTT 3.1.1 with a clean session, QoS 0 everywhere, and drop an
// inbound packet larger than 8192 bytes silently (MaxPacket): Dropped
// counts those.
//
//	clock, err := mqttclock.Dial(ctx, mqttclock.Config{Broker: "tcp://" + addr, Prefix: "clock1"})
//	defer clock.Close()
//	msg, err := clock.Next(ctx) // the next command the clock received
//
// Only tests import this package.
package mqttclock

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Dialect is the firmware a Clock behaves as. The zero value is AWTRIX3,
// the stock firmware.
type Dialect int

const (
	AWTRIX3 Dialect = iota // Blueforcer/awtrix3
	NG                     // Blueforcer/awtrix-ng
)

func (d Dialect) String() string {
	switch d {
	case AWTRIX3:
		return "awtrix3"
	case NG:
		return "awtrix-ng"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// The firmwares' constants.
const (
	// MaxPacket is both firmwares' PubSubClient buffer (MQTT_MAX_PACKET_SIZE
	// in awtrix3's platformio.ini, kMqttBufferBytes in awtrix-ng): an
	// inbound packet larger than this, fixed header included, is dropped
	// silently. What the clocks publish is streamed and has no limit.
	MaxPacket = 8192
	// KeepAlive is PubSubClient's MQTT_KEEPALIVE, which neither firmware
	// changes.
	KeepAlive = 15 * time.Second
	// FirmwareSubscribeGap is AWTRIX 3's delay(30) after each SUBSCRIBE.
	FirmwareSubscribeGap = 30 * time.Millisecond
	// StatsInterval is how often both firmwares publish their stats
	// (AWTRIX 3 STATS_INTERVAL, NG's default statsInterval).
	StatsInterval = 10 * time.Second
	// ReconnectInterval is arduino-home-assistant's ReconnectInterval, the
	// least time between two of AWTRIX 3's connection attempts, and NG's
	// first backoff step.
	ReconnectInterval = 5 * time.Second
)

// handshakeTimeout is how long a firmware waits for CONNACK: PubSubClient's
// MQTT_SOCKET_TIMEOUT (15 s) on AWTRIX 3, kHandshakeSeconds on NG.
func (d Dialect) handshakeTimeout() time.Duration {
	if d == NG {
		return 2 * time.Second
	}
	return 15 * time.Second
}

// quiesce is how long Close lets paho send DISCONNECT.
const quiesce = 250 // ms

var (
	ErrConfig       = errors.New("mqttclock: invalid configuration")
	ErrClosed       = errors.New("mqttclock: clock closed")
	ErrNotConnected = errors.New("mqttclock: not connected")
	ErrLost         = errors.New("mqttclock: connection lost")
	// ErrSubscribe is a SUBACK refusing a subscription (return code 0x80).
	ErrSubscribe = errors.New("mqttclock: subscription refused")
)

// The CONNACK refusals, as paho reports them (the same values, so
// errors.Is matches either name).
var (
	ErrBadProtocol       = packets.ErrorRefusedBadProtocolVersion    // 1
	ErrIDRejected        = packets.ErrorRefusedIDRejected            // 2
	ErrServerUnavailable = packets.ErrorRefusedServerUnavailable     // 3
	ErrBadCredentials    = packets.ErrorRefusedBadUsernameOrPassword // 4
	ErrNotAuthorized     = packets.ErrorRefusedNotAuthorised         // 5
)

// Config describes one clock. Zero values are the firmware's defaults
// unless said otherwise.
type Config struct {
	// Broker is the broker's URL in paho's forms: "tcp://host:port" (or
	// mqtt://) and "tls://host:port" (or ssl://, mqtts://).
	Broker string
	// TLS is the client configuration for tls:// (nil: the system roots).
	TLS *tls.Config
	// User and Password: AWTRIX 3 sends both only when both are set; NG
	// sends both unless both are empty. (paho cannot send a password
	// without a user name, or an empty password: NG's edge cases of one
	// empty field differ on the wire.)
	User, Password string
	// ClientID: AWTRIX 3's is its hostname, by default "awtrix_" and the
	// last three MAC bytes in hex; NG's is its uid, the 12-hex-digit MAC.
	// Empty: a random one of the dialect's form.
	ClientID string
	// Prefix is the topic prefix P; empty: ClientID (both firmwares' default).
	Prefix  string
	Dialect Dialect
	// KeepAlive: 0 is KeepAlive (15 s). Whole seconds (MQTT's unit).
	KeepAlive time.Duration
	// StatsEvery is the period of the stats publish (AWTRIX 3 P/stats, NG
	// P/state/device); 0: none, tests call PublishStats. The firmwares'
	// is StatsInterval.
	StatsEvery time.Duration
	// SubscribeGap is AWTRIX 3's pause between SUBSCRIBEs; 0 (tests): none.
	// The firmware's is FirmwareSubscribeGap. The firmware also waits
	// 200 ms after the last one before it publishes; Dial waits for the
	// SUBACKs instead.
	SubscribeGap time.Duration
	// Reconnect makes the clock reconnect after a lost connection, as the
	// firmwares do: an attempt no sooner than ReconnectEvery after the
	// previous attempt, then every ReconnectEvery (AWTRIX 3's rule; NG
	// backs off from 5 s to 60 s, which tests have no use for). Each new
	// connection subscribes and publishes as the first did. Dial itself
	// makes one attempt. Without Reconnect, a lost connection stays lost.
	Reconnect bool
	// ReconnectEvery: 0 is ReconnectInterval (5 s).
	ReconnectEvery time.Duration
	// Result answers an NG command: the /result payload for (topic,
	// payload). nil, or a nil return: {"ok":true}. A non-nil empty return:
	// no /result at all, as NG does for a topic that matches no route.
	// Called on paho's message goroutine, in order; it must not block.
	Result func(topic string, payload []byte) []byte
	// Screen is what the clock shows, row by row, 32 pixels wide, 0xRRGGBB
	// (256 for the 32x8 matrix); nil: DefaultScreen.
	Screen []uint32
	// Stats is the stats JSON, sent as it is (AWTRIX 3 P/stats, NG
	// P/state/device); nil: a realistic one with live uptime, message
	// count and current app.
	Stats []byte
}

// Message is one message a clock received.
type Message struct {
	Topic    string
	Payload  []byte // the clock's own copy; do not modify
	Retained bool
}

// Clock is one simulated clock. Its methods are safe for concurrent use.
type Clock struct {
	cfg     Config    // static after Dial, defaults filled in
	started time.Time // Dial's time, for the stats' uptime
	ctx     context.Context
	cancel  context.CancelFunc // ends the reconnect and stats loops; Close calls it
	wg      sync.WaitGroup     // the reconnect and stats goroutines

	mu       sync.Mutex    // guards the fields below
	closed   bool          // Close was called
	cur      *conn         // the connection that came online last
	online   chan struct{} // closed once a connection is online; replaced when it is lost
	commands []Message
	taken    int           // commands[:taken] were returned by Next
	arrived  chan struct{} // closed and replaced when a command is recorded
	dropped  int
	app      string // current app, for the stats and SetApp
}

// conn is one MQTT connection (one paho client: a reconnection is a new
// client, as a new PubSubClient session is).
type conn struct {
	clock     *Clock
	client    mqtt.Client // static after connect
	attempted time.Time   // when the connection attempt began
	lost      chan struct{}
	lostOnce  sync.Once

	mu   sync.Mutex  // guards the fields below
	nc   net.Conn    // the socket, for Drop
	stop func() bool // detaches ctx from the handshake (open's AfterFunc)
}

// Dial connects a clock, subscribes exactly as its firmware does, waits for
// every SUBACK and publishes what the firmware publishes on connecting.
// A CONNACK refusal comes back as paho's error (see ErrBadCredentials and
// the others). The clock does not reconnect unless cfg.Reconnect is set.
func Dial(ctx context.Context, cfg Config) (*Clock, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	c := &Clock{
		cfg:     cfg,
		started: time.Now(),
		ctx:     lctx,
		cancel:  cancel,
		online:  make(chan struct{}),
		arrived: make(chan struct{}),
		app:     "Time",
	}
	if err := c.session(ctx); err != nil {
		cancel()
		return nil, err
	}
	return c, nil
}

func (cfg *Config) populate() error {
	if cfg.Broker == "" {
		return fmt.Errorf("%w: no Broker", ErrConfig)
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return fmt.Errorf("%w: Broker: %w", ErrConfig, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "tls", "ssl", "mqtts":
	default:
		return fmt.Errorf("%w: Broker scheme %q (want tcp:// or tls://)", ErrConfig, u.Scheme)
	}
	switch cfg.Dialect {
	case AWTRIX3, NG:
	default:
		return fmt.Errorf("%w: %v", ErrConfig, cfg.Dialect)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = randomID(cfg.Dialect)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = cfg.ClientID
	}
	if strings.ContainsAny(cfg.Prefix, "+#") {
		return fmt.Errorf("%w: Prefix %q has a wildcard", ErrConfig, cfg.Prefix)
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = KeepAlive
	}
	if cfg.KeepAlive < time.Second || cfg.StatsEvery < 0 || cfg.SubscribeGap < 0 || cfg.ReconnectEvery < 0 {
		return fmt.Errorf("%w: KeepAlive under 1 s, or a negative duration", ErrConfig)
	}
	if cfg.ReconnectEvery == 0 {
		cfg.ReconnectEvery = ReconnectInterval
	}
	if cfg.Screen == nil {
		cfg.Screen = DefaultScreen()
	} else {
		if len(cfg.Screen) == 0 || len(cfg.Screen)%screenWidth != 0 {
			return fmt.Errorf("%w: Screen has %d pixels, not rows of %d", ErrConfig, len(cfg.Screen), screenWidth)
		}
		cfg.Screen = append([]uint32(nil), cfg.Screen...)
	}
	return nil
}

// randomID is a fresh client id of the dialect's form.
func randomID(d Dialect) string {
	if d == NG {
		b := make([]byte, 6)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	b := make([]byte, 3)
	rand.Read(b)
	return "awtrix_" + hex.EncodeToString(b)
}

// session makes one connection and runs the firmware's on-connect
// sequence; on success the connection is the clock's current one.
func (c *Clock) session(ctx context.Context) error {
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	if err := cn.onConnect(ctx); err != nil {
		cn.client.Disconnect(quiesce)
		return err
	}
	return c.markOnline(cn)
}

// connect opens the socket and completes the MQTT handshake.
func (c *Clock) connect(ctx context.Context) (*conn, error) {
	cn := &conn{clock: c, attempted: time.Now(), lost: make(chan struct{})}
	cfg := &c.cfg
	o := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetProtocolVersion(4). // 3.1.1, no fallback to 3.1
		SetCleanSession(true).
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(cfg.KeepAlive). // PubSubClient gives up after another keep-alive
		SetConnectTimeout(cfg.Dialect.handshakeTimeout()).
		SetAutoReconnect(false). // Reconnect is ours: a new client per connection
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetOrderMatters(true). // commands are handled one at a time, in order, as the firmware's loop does
		SetDefaultPublishHandler(cn.handle).
		SetConnectionLostHandler(func(mqtt.Client, error) { c.lostConn(cn) }).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			return cn.open(ctx, u)
		})
	if cfg.sendsCredentials() {
		o.SetUsername(cfg.User).SetPassword(cfg.Password)
	}
	will, payload, retained := cfg.will()
	o.SetBinaryWill(will, payload, 0, retained)
	cn.client = mqtt.NewClient(o)

	tok := cn.client.Connect()
	// Not abandoned when ctx ends: open arranged for ctx to end the
	// handshake, so the token completes promptly either way.
	<-tok.Done()
	stopped := cn.stopOnCancel()
	if err := tok.Error(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("mqttclock: connect: %w", ctx.Err())
		}
		return nil, fmt.Errorf("mqttclock: connect %s: %w", cfg.ClientID, err)
	}
	if !stopped { // ctx ended after CONNACK: the socket's deadline is spoilt
		cn.client.Disconnect(quiesce)
		return nil, fmt.Errorf("mqttclock: connect: %w", ctx.Err())
	}
	return cn, nil
}

func (cfg *Config) sendsCredentials() bool {
	if cfg.Dialect == NG {
		return cfg.User != "" || cfg.Password != ""
	}
	return cfg.User != "" && cfg.Password != ""
}

// open dials for paho, and makes ctx's end fail the handshake (a deadline
// in the past) until stopOnCancel.
func (cn *conn) open(ctx context.Context, u *url.URL) (net.Conn, error) {
	d := &net.Dialer{Timeout: cn.clock.cfg.Dialect.handshakeTimeout()}
	var nc net.Conn
	var err error
	switch u.Scheme {
	case "tls", "ssl", "mqtts":
		td := &tls.Dialer{NetDialer: d, Config: cn.clock.cfg.TLS}
		nc, err = td.DialContext(ctx, "tcp", u.Host)
	default:
		nc, err = d.DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	cn.mu.Lock()
	cn.nc = nc
	cn.stop = stop
	cn.mu.Unlock()
	return nc, nil
}

// stopOnCancel detaches ctx from the socket; false if ctx had already
// ended (and set the deadline).
func (cn *conn) stopOnCancel() bool {
	cn.mu.Lock()
	stop := cn.stop
	cn.stop = nil
	cn.mu.Unlock()
	if stop == nil {
		return true
	}
	return stop()
}

// markOnline makes cn the current connection, unless it was lost or the
// clock closed meanwhile.
func (c *Clock) markOnline(cn *conn) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cn.client.Disconnect(quiesce)
		return ErrClosed
	}
	defer c.mu.Unlock()
	select {
	case <-cn.lost:
		return ErrLost
	default:
	}
	c.cur = cn
	close(c.online)
	if c.cfg.StatsEvery > 0 {
		c.wg.Add(1)
		go c.statsLoop(cn)
	}
	return nil
}

// lostConn runs on paho's goroutine when cn's connection is lost (not
// when it is closed by Disconnect).
func (c *Clock) lostConn(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == cn {
		// Before Lost fires, so that Online taken after it is the next one.
		c.online = make(chan struct{})
	}
	cn.lostOnce.Do(func() { close(cn.lost) })
	if c.cur != cn { // lost during its on-connect sequence, which reports it
		return
	}
	if c.cfg.Reconnect && !c.closed {
		c.wg.Add(1)
		go c.reconnect(cn.attempted)
	}
}

// reconnect tries to connect again until it succeeds or the clock closes.
func (c *Clock) reconnect(last time.Time) {
	defer c.wg.Done()
	for {
		if d := time.Until(last.Add(c.cfg.ReconnectEvery)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return
			}
		}
		last = time.Now()
		if c.session(c.ctx) == nil || c.ctx.Err() != nil {
			return
		}
	}
}

func (c *Clock) statsLoop(cn *conn) {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.StatsEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			cn.publishStats()
		case <-cn.lost:
			return
		case <-c.ctx.Done():
			return
		}
	}
}

// current is the connection that is online, if one is.
func (c *Clock) current() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	select {
	case <-c.online:
		return c.cur, nil
	default:
		return nil, ErrNotConnected
	}
}

// Commands is every command the clock received, in order: each message on
// its subscriptions (for NG, not the /result echoes of its own answers),
// not those dropped for size.
func (c *Clock) Commands() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.commands...)
}

// Next returns the next command not yet returned by Next, waiting for it
// until ctx ends or the clock is closed (ErrClosed).
func (c *Clock) Next(ctx context.Context) (Message, error) {
	for {
		c.mu.Lock()
		if c.taken < len(c.commands) {
			m := c.commands[c.taken]
			c.taken++
			c.mu.Unlock()
			return m, nil
		}
		arrived, closed := c.arrived, c.closed
		c.mu.Unlock()
		if closed {
			return Message{}, ErrClosed
		}
		select {
		case <-arrived:
		case <-c.ctx.Done():
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

// Dropped is how many inbound packets the clock dropped for being larger
// than MaxPacket, as PubSubClient does.
func (c *Clock) Dropped() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Publish publishes payload on P/topic, QoS 0, not retained.
func (c *Clock) Publish(topic string, payload []byte) error {
	cn, err := c.current()
	if err != nil {
		return err
	}
	return cn.send(c.cfg.Prefix+"/"+topic, payload, false)
}

// PublishStats publishes the stats once: AWTRIX 3 on P/stats, NG retained
// on P/state/device.
func (c *Clock) PublishStats() error {
	cn, err := c.current()
	if err != nil {
		return err
	}
	return cn.publishStats()
}

// SetApp changes the app on the clock's screen; if it changed, the clock
// says so: AWTRIX 3 on P/stats/currentApp, NG retained on
// P/state/apps/active. The default stats carry it too.
func (c *Clock) SetApp(name string) error {
	c.mu.Lock()
	changed := name != c.app
	c.app = name
	c.mu.Unlock()
	if !changed {
		return nil
	}
	cn, err := c.current()
	if err != nil {
		return err
	}
	if c.cfg.Dialect == NG {
		return cn.send(c.cfg.Prefix+"/state/apps/active", []byte(name), true)
	}
	return cn.send(c.cfg.Prefix+"/stats/currentApp", []byte(name), false)
}

// Connected reports whether the clock is connected and has finished its
// on-connect sequence.
func (c *Clock) Connected() bool {
	cn, err := c.current()
	if err != nil {
		return false
	}
	select {
	case <-cn.lost:
		return false
	default:
		return true
	}
}

// Online is closed once the clock is connected and has subscribed and
// published. After a lost connection it is a new channel, closed when a
// reconnection (Config.Reconnect) is online: take it after Lost fires.
func (c *Clock) Online() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.online
}

// Lost is closed when the clock's current connection is lost: the broker
// closed it or went away, or Drop. Close does not close it. With
// Reconnect, a reconnection has a new channel once it is online.
func (c *Clock) Lost() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.lost
}

// Drop closes the clock's socket without DISCONNECT, as a clock that loses
// its Wi-Fi or its power: the broker publishes its will, Lost fires, and
// with Reconnect the clock connects again.
func (c *Clock) Drop() error {
	cn, err := c.current()
	if err != nil {
		return err
	}
	cn.mu.Lock()
	nc := cn.nc
	cn.mu.Unlock()
	// Not nc.Close: paho takes "use of closed network connection" for its
	// own doing and would notice nothing until a keep-alive went
	// unanswered. A deadline in the past fails its reads at once; it then
	// closes the socket itself, without DISCONNECT.
	return nc.SetDeadline(time.Unix(1, 0))
}

// Close disconnects the clock (DISCONNECT, so no will) and stops it for
// good; it waits for the clock's goroutines.
func (c *Clock) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	cn := c.cur
	c.mu.Unlock()
	c.cancel() // ends the loops, any reconnection in progress, and wakes Next
	if cn != nil {
		cn.client.Disconnect(quiesce)
	}
	c.wg.Wait()
}

// send publishes at QoS 0 and waits until paho has written it.
func (cn *conn) send(topic string, payload []byte, retained bool) error {
	return cn.wait(cn.clock.ctx, cn.client.Publish(topic, 0, retained, payload))
}

// wait waits for a paho token, the connection's loss or ctx's end.
func (cn *conn) wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-cn.lost:
		return ErrLost
	case <-ctx.Done():
		return ctx.Err()
	}
}
