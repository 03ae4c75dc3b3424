package loadtest

// This file is the device swarm: N simulated clocks in this process, each
// with its own token and session, over raw QUIC or WebTransport (sharing
// UDP sockets), WebSocket, or MQTT as a stock AWTRIX 3 clock
// (swarm_mqtt.go). Every device acknowledges like a real one and records which
// message ids reached it, for the ledger. Given a cluster's addresses, each
// device knows which node its session is on, and moves make-before-break
// when its node sends it away.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
)

// SwarmConfig configures a Swarm.
type SwarmConfig struct {
	Addr string // the relay, HOST:PORT (UDP)
	// Addrs, if set, are a cluster's nodes instead of Addr: device i
	// starts on node i mod len(Addrs), and on GOAWAY moves to the next
	// node in an order of its own (as DNS round robin hands addresses out
	// in many orders), so that a draining node's devices spread over the
	// others.
	Addrs   []string
	TLS     *tls.Config // trusts the relay
	Devices int
	// WebTransportShare is the fraction of devices (0..1) that connect over
	// WebTransport instead of raw QUIC, WebSocketShare over WebSocket (TCP),
	// each spread evenly over the indexes.
	WebTransportShare float64
	WebSocketShare    float64
	// MQTTShare is the fraction of devices that are stock AWTRIX 3 clocks
	// on MQTT (mqttclient.go), logging in at MQTTAddr (plain MQTT,
	// HOST:PORT) or, in a cluster, at MQTTAddrs[node], one per Addrs.
	MQTTShare float64
	MQTTAddr  string
	MQTTAddrs []string
	// ConnectRate paces first connections, devices per second; 0 dials as
	// fast as ConnectConcurrency allows (a storm).
	ConnectRate float64
	// ConnectConcurrency bounds first dials in flight; default 256.
	ConnectConcurrency int
	// AckDelay and AckJitter make devices slow: each reply waits AckDelay
	// plus a uniform ±AckJitter (never below zero).
	AckDelay, AckJitter time.Duration
	// PerSocket is how many devices share one UDP socket; default 256.
	PerSocket int
	// Events keeps a log of every device's sessions (Events), to explain
	// webhooks that were not answered 2xx.
	Events bool
}

// Defaults for SwarmConfig.
const (
	DefaultConnectConcurrency = 256
	DefaultPerSocket          = 256
)

// Reconnect backoff: full jitter, exponential, bounded.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 5 * time.Second
	// goAwayMax caps a relay's "come back after" (it spreads devices over
	// --reconnect-spread); a load test does not wait longer than this.
	goAwayMax = 5 * time.Second
)

var okReply = []byte(`{"ok":true}`)

// errNotConnected: Rotate on a device between sessions.
var errNotConnected = errors.New("loadtest: device not connected")

// Swarm is N simulated devices. Create with NewSwarm, then Connect; Close
// ends every session and goroutine.
type Swarm struct {
	cfg   SwarmConfig       // static
	devs  []*simDevice      // static after NewSwarm
	socks []*quic.Transport // static after NewSwarm; closed by Close

	seen   seenTable
	issued atomic.Uint64 // ids handed out by NextID; an id at or above it is stray

	handled   atomic.Uint64 // messages the handlers saw
	misrouted atomic.Uint64 // messages at a device other than their token's
	unparsed  atomic.Uint64 // bodies without a readable "lt" key
	stray     atomic.Uint64 // ids never issued
	inHandler atomic.Int64  // handlers running now

	connected  atomic.Int64   // sessions up now
	everUp     atomic.Int64   // devices that connected at least once
	reconnects atomic.Uint64  // sessions after a device's first, moves excluded
	dialErrors atomic.Uint64  // failed dials, first or later
	onNode     []atomic.Int64 // sessions up now per node; static length
	moves      atomic.Uint64  // GOAWAYs answered by a login elsewhere
	moveFails  atomic.Uint64  // GOAWAYs whose move's login failed
	events     *eventLog      // nil unless SwarmConfig.Events

	ctx       context.Context // ends the devices; set by Connect
	cancel    context.CancelFunc
	wg        sync.WaitGroup // device goroutines
	closeOnce sync.Once

	mu        sync.Mutex // guards the fields below
	dialErrs  []string   // the first few distinct dial errors
	moveErrs  []string   // the first few distinct errors of moves' logins
	connTimes []time.Duration
	connBy    map[string][]time.Duration // connTimes by transport
	connacks  []time.Duration            // MQTT clocks' first logins: TCP connect to CONNACK
	firstDial time.Time
	lastUp    time.Time
	allUp     chan struct{} // closed when everUp reaches len(devs)
}

// simDevice is one device of the swarm; it is the device.Handler of its
// sessions.
type simDevice struct {
	s   *Swarm // static
	idx int    // static
	wt  bool   // static: WebTransport
	ws  bool   // static: WebSocket
	mq  bool   // static: an MQTT clock
	udp *quic.Transport
	// tokens are the relays' address-validation tokens given to this
	// device, as a real device keeps its own; static.
	tokens quic.TokenStore
	// sessions are its TLS sessions, for resumption; static.
	sessions tls.ClientSessionCache
	home     int   // static: the node it starts on
	succ     []int // static: succ[n] is the node after n in this device's order

	token atomic.Pointer[string] // current token; the targeter reads it without a lock
	// node is the node of the session webhooks reach, -1 between
	// sessions; the targeter reads it without a lock.
	node atomic.Int32
	conn atomic.Pointer[device.Conn] // the live session; churn hangs it up
	mc   atomic.Pointer[mqttConn]    // an MQTT clock's live connection, likewise

	// mu serializes rotation with dialing: a device reads its token and
	// logs in with it, or rotates its token over a session, never both at
	// once (a rotation over a session that is moving would leave the new
	// session with a token the old one just gave up).
	mu sync.Mutex
}

// NewSwarm makes the devices' tokens and UDP sockets (127.0.0.1:0).
func NewSwarm(cfg SwarmConfig) (*Swarm, error) {
	if cfg.Devices <= 0 {
		return nil, errors.New("loadtest: swarm needs at least one device")
	}
	if cfg.ConnectConcurrency <= 0 {
		cfg.ConnectConcurrency = DefaultConnectConcurrency
	}
	if cfg.PerSocket <= 0 {
		cfg.PerSocket = DefaultPerSocket
	}
	cfg.WebSocketShare = min(max(cfg.WebSocketShare, 0), 1)
	cfg.WebTransportShare = min(max(cfg.WebTransportShare, 0), 1-cfg.WebSocketShare)
	cfg.MQTTShare = min(max(cfg.MQTTShare, 0), 1-cfg.WebSocketShare-cfg.WebTransportShare)
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = []string{cfg.Addr}
	}
	if len(cfg.MQTTAddrs) == 0 && cfg.MQTTAddr != "" {
		cfg.MQTTAddrs = []string{cfg.MQTTAddr}
	}
	if cfg.MQTTShare > 0 && len(cfg.MQTTAddrs) != len(cfg.Addrs) {
		return nil, fmt.Errorf("loadtest: swarm: MQTT clocks need the MQTT address of each of the %d nodes, have %d", len(cfg.Addrs), len(cfg.MQTTAddrs))
	}
	nodes := len(cfg.Addrs)
	s := &Swarm{cfg: cfg, allUp: make(chan struct{}), onNode: make([]atomic.Int64, nodes)}
	if cfg.Events {
		s.events = &eventLog{}
	}
	nWS := shareOf(cfg.Devices, cfg.WebSocketShare)
	nWT := min(shareOf(cfg.Devices, cfg.WebTransportShare), cfg.Devices-nWS)
	nMQ := min(shareOf(cfg.Devices, cfg.MQTTShare), cfg.Devices-nWS-nWT)
	rest := 0      // devices not on WebSocket so far
	rest2 := 0     // devices on neither WebSocket nor WebTransport so far
	onSockets := 0 // devices given a UDP socket so far: every one but the MQTT clocks
	for i := range cfg.Devices {
		// The WebTransport devices are spread over those not on WebSocket,
		// the MQTT clocks over those on neither.
		ws, wt, mq := spread(i, nWS, cfg.Devices), false, false
		if !ws {
			wt = spread(rest, nWT, cfg.Devices-nWS)
			rest++
			if !wt {
				mq = spread(rest2, nMQ, cfg.Devices-nWS-nWT)
				rest2++
			}
		}
		d := &simDevice{s: s, idx: i, wt: wt, ws: ws, mq: mq, home: i % nodes, succ: successors(i, nodes)}
		if !mq { // a clock on MQTT keeps no UDP socket, QUIC or TLS state
			if onSockets%cfg.PerSocket == 0 {
				uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					s.closeSockets()
					return nil, fmt.Errorf("loadtest: swarm socket: %w", err)
				}
				s.socks = append(s.socks, &quic.Transport{Conn: uc})
			}
			onSockets++
			d.udp = s.socks[len(s.socks)-1]
			d.tokens, d.sessions = quic.NewLRUTokenStore(nodes, 1), tls.NewLRUClientSessionCache(nodes)
		}
		tok := wire.NewToken()
		d.token.Store(&tok)
		d.node.Store(-1)
		s.devs = append(s.devs, d)
	}
	return s, nil
}

// successors is device i's order of n nodes as a successor table: a
// permutation of its own, fixed by i so that runs repeat.
func successors(i, n int) []int {
	order := rand.New(rand.NewPCG(uint64(i), 7)).Perm(n)
	succ := make([]int, n)
	for k, node := range order {
		succ[node] = order[(k+1)%n]
	}
	return succ
}

// spread chooses k of n indexes, evenly: index i is chosen when i*k/n and
// (i+1)*k/n fall in different units.
func spread(i, k, n int) bool { return (i+1)*k/n > i*k/n }

// shareOf is a share of n, rounded.
func shareOf(n int, share float64) int { return int(math.Round(float64(n) * share)) }

// Len is the number of devices.
func (s *Swarm) Len() int { return len(s.devs) }

// Transport names device i's transport: quic, webtransport, websocket or
// mqtt.
func (s *Swarm) Transport(i int) string { return s.devs[i].transport() }

func (d *simDevice) transport() string {
	switch {
	case d.mq:
		return TransportMQTT
	case d.ws:
		return TransportWebSocket
	case d.wt:
		return TransportWebTransport
	}
	return TransportQUIC
}

// Transports lists the transports the swarm's devices use, in a fixed
// order: quic, webtransport, websocket, mqtt.
func (s *Swarm) Transports() []string {
	var ts []string
	if s.Len() > s.WebTransportDevices()+s.WebSocketDevices()+s.MQTTDevices() {
		ts = append(ts, TransportQUIC)
	}
	if s.WebTransportDevices() > 0 {
		ts = append(ts, TransportWebTransport)
	}
	if s.WebSocketDevices() > 0 {
		ts = append(ts, TransportWebSocket)
	}
	if s.MQTTDevices() > 0 {
		ts = append(ts, TransportMQTT)
	}
	return ts
}

// connectTimes returns the first logins' dial + login times of transport's
// devices.
func (s *Swarm) connectTimes(transport string) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.connBy[transport])
}

// WebTransportDevices counts the WebTransport devices.
func (s *Swarm) WebTransportDevices() int {
	n := 0
	for _, d := range s.devs {
		if d.wt {
			n++
		}
	}
	return n
}

// WebSocketDevices counts the WebSocket devices.
func (s *Swarm) WebSocketDevices() int {
	n := 0
	for _, d := range s.devs {
		if d.ws {
			n++
		}
	}
	return n
}

// Token is device i's current token.
func (s *Swarm) Token(i int) string { return *s.devs[i].token.Load() }

// Connected is the number of sessions up now.
func (s *Swarm) Connected() int { return int(s.connected.Load()) }

// Node is the node of device i's session, -1 between sessions.
func (s *Swarm) Node(i int) int { return int(s.devs[i].node.Load()) }

// OnNode is the number of sessions up on node n now.
func (s *Swarm) OnNode(n int) int { return int(s.onNode[n].Load()) }

// Events returns each device's logged events in time order (none unless
// SwarmConfig.Events).
func (s *Swarm) Events() map[int32][]event { return s.events.byDevice() }

// Moves returns how many GOAWAYs the devices answered by logging in on
// another node first, and how many such moves failed to log in.
func (s *Swarm) Moves() (moved, failed uint64) { return s.moves.Load(), s.moveFails.Load() }

// MoveErrors returns the first few distinct errors of failed moves.
func (s *Swarm) MoveErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.moveErrs)
}

// NextID issues a message id.
func (s *Swarm) NextID() uint64 { return s.issued.Add(1) - 1 }

// Connect starts every device, paced by ConnectRate, and waits until all
// have logged in once or wait ends. Devices that are not up by then keep
// trying in the background until Close. ctx bounds the devices' lives.
func (s *Swarm) Connect(ctx context.Context, wait time.Duration) ConnectStats {
	s.ctx, s.cancel = context.WithCancel(ctx)
	sem := make(chan struct{}, s.cfg.ConnectConcurrency)
	s.mu.Lock()
	s.firstDial = time.Now()
	s.mu.Unlock()
	s.wg.Add(1)
	go func() { // the launcher: one device goroutine per tick
		defer s.wg.Done()
		start := time.Now()
		for i, d := range s.devs {
			if s.cfg.ConnectRate > 0 {
				at := start.Add(time.Duration(float64(i) / s.cfg.ConnectRate * float64(time.Second)))
				if !sleepCtx(s.ctx, time.Until(at)) {
					return
				}
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.run(d, sem)
			}()
		}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.allUp:
	case <-t.C:
	case <-ctx.Done():
	}
	return s.connectStats()
}

func (s *Swarm) connectStats() ConnectStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	up := len(s.connTimes)
	cs := ConnectStats{Devices: len(s.devs), Failed: len(s.devs) - up, DialErrors: s.dialErrors.Load()}
	if up > 0 {
		cs.AllConnectedS = s.lastUp.Sub(s.firstDial).Seconds()
		if cs.AllConnectedS > 0 {
			cs.HandshakesPS = float64(up) / cs.AllConnectedS
		}
		ts := slices.Clone(s.connTimes)
		slices.Sort(ts)
		cs.P50MS = millis(quantile(ts, 0.50))
		cs.P99MS = millis(quantile(ts, 0.99))
	}
	return cs
}

// quantile of sorted durations, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// run is device d's life: dial (the first time inside the connect
// semaphore), serve, and reconnect with backoff until the swarm closes.
// A device comes back to the node it was on, and tries the next node in
// its order after each failed dial.
func (s *Swarm) run(d *simDevice, sem chan struct{}) {
	if d.mq {
		s.runMQTT(d, sem)
		return
	}
	first := true
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
	node := d.home
	for attempt := 0; ; {
		d.mu.Lock()
		tok := *d.token.Load()
		d.mu.Unlock()
		start := time.Now()
		c, err := s.dial(d, node, tok)
		if err != nil {
			if !s.dialFailed(d, &node, &attempt, err) {
				return
			}
			continue
		}
		attempt = 0
		s.events.add(d.idx, node, evUp)
		if first {
			first = false
			s.up(d, time.Since(start))
			release()
		} else {
			s.reconnects.Add(1)
		}
		var moveFailed bool
		node, moveFailed, err = s.serve(d, c, node)
		if s.ctx.Err() != nil {
			return
		}
		// Churn closes sessions on purpose: come back at once, like a
		// clock whose Wi-Fi blinked. A relay's go-away names its delay,
		// unless a move spent it already; a failed move counts as a
		// failed dial, and the next node is tried.
		var wait time.Duration
		if moveFailed {
			attempt = 1
			node = d.succ[node]
			wait = backoff(attempt)
		} else if ga, ok := errors.AsType[*device.GoAwayError](err); ok {
			wait = min(ga.ReconnectAfter, goAwayMax)
		}
		if !sleepCtx(s.ctx, wait) {
			return
		}
	}
}

// kindOf is the transport of a simulated device.
func kindOf(wt, ws bool) transport.Kind {
	switch {
	case ws:
		return transport.KindWebSocket
	case wt:
		return transport.KindWebTransport
	}
	return transport.KindQUIC
}

// dial logs device d in on node with tok, and makes the session the one
// webhooks reach.
func (s *Swarm) dial(d *simDevice, node int, tok string) (*device.Conn, error) {
	c, err := device.Dial(s.ctx, s.cfg.Addrs[node], tok, device.Options{
		TLS: s.cfg.TLS, Agent: "loadtest", UDP: d.udp, Transport: kindOf(d.wt, d.ws), Tokens: d.tokens, Sessions: d.sessions,
		// With somewhere to go, a GOAWAY is answered make-before-break.
		MoveFirst: len(s.cfg.Addrs) > 1,
	})
	if err != nil {
		return nil, err
	}
	// Count the session before Connect can see the device up.
	s.connected.Add(1)
	s.onNode[node].Add(1)
	d.conn.Store(c)
	d.node.Store(int32(node))
	return c, nil
}

// ended accounts for the end of c, device d's session on node.
func (s *Swarm) ended(d *simDevice, c *device.Conn, node int) {
	if d.conn.CompareAndSwap(c, nil) {
		d.node.Store(-1)
	}
	s.events.add(d.idx, node, evDown)
	s.connected.Add(-1)
	s.onNode[node].Add(-1)
	c.Close()
}

// serve answers c's messages until the session ends. On GOAWAY, with
// another node to go to, it moves make-before-break: after the relay's
// delay it logs in on the next node in d's order and only then leaves c,
// whose messages in flight finish. It returns the node of the last session
// and why it ended; failed says a move's login failed (the old session
// has been left all the same).
func (s *Swarm) serve(d *simDevice, c *device.Conn, node int) (last int, failed bool, err error) {
	for {
		served := make(chan error, 1)
		go func() { served <- c.Serve(s.ctx, d) }()
		select {
		case err := <-served:
			s.ended(d, c, node)
			return node, false, err
		case <-c.GoingAway():
		}
		s.events.add(d.idx, node, evGoAway)
		if len(s.cfg.Addrs) < 2 {
			// Nowhere to move: Serve leaves at once (no MoveFirst).
			err := <-served
			s.ended(d, c, node)
			return node, false, err
		}
		t := time.NewTimer(min(c.GoAway().ReconnectAfter, goAwayMax))
		early := false
		select {
		case <-t.C:
		case <-s.ctx.Done():
		case err = <-served: // closed before the delay: move all the same
			early = true
		}
		t.Stop()
		next := d.succ[node]
		// The token cannot change between reading it and the new login:
		// Rotate waits for mu.
		d.mu.Lock()
		nc, merr := s.dial(d, next, *d.token.Load())
		d.mu.Unlock()
		if merr == nil {
			s.events.add(d.idx, next, evMoved)
		}
		c.Leave()
		if !early {
			err = <-served
		}
		s.ended(d, c, node)
		if merr != nil {
			if s.ctx.Err() == nil {
				s.moveFails.Add(1)
				s.dialError(merr)
				s.mu.Lock()
				if msg := merr.Error(); len(s.moveErrs) < maxDialErrs && !slices.Contains(s.moveErrs, msg) {
					s.moveErrs = append(s.moveErrs, msg)
				}
				s.mu.Unlock()
			}
			return next, true, err
		}
		s.moves.Add(1)
		c, node = nc, next
	}
}

// dialFailed counts a device's failed dial, moves it to the next node in
// its order and waits out its backoff; false once the swarm is over.
func (s *Swarm) dialFailed(d *simDevice, node, attempt *int, err error) bool {
	if s.ctx.Err() != nil {
		return false
	}
	s.dialError(err)
	*attempt++
	*node = d.succ[*node]
	return sleepCtx(s.ctx, backoff(*attempt))
}

// maxDialErrs is how many distinct dial errors the swarm keeps.
const maxDialErrs = 3

func (s *Swarm) dialError(err error) {
	s.dialErrors.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := err.Error(); len(s.dialErrs) < maxDialErrs && !slices.Contains(s.dialErrs, msg) {
		s.dialErrs = append(s.dialErrs, msg)
	}
}

// DialErrors returns the number of failed dials and the first few
// distinct errors.
func (s *Swarm) DialErrors() (uint64, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialErrors.Load(), slices.Clone(s.dialErrs)
}

// up records a device's first login.
func (s *Swarm) up(d *simDevice, took time.Duration) {
	s.mu.Lock()
	s.connTimes = append(s.connTimes, took)
	if s.connBy == nil {
		s.connBy = map[string][]time.Duration{}
	}
	s.connBy[d.transport()] = append(s.connBy[d.transport()], took)
	s.lastUp = time.Now()
	s.mu.Unlock()
	if s.everUp.Add(1) == int64(len(s.devs)) {
		close(s.allUp)
	}
}

func backoff(attempt int) time.Duration {
	ceil := backoffBase << min(attempt, 10)
	return rand.N(min(ceil, backoffMax)) + time.Millisecond
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Reconnect hangs up device i's session; its loop dials again at once.
func (s *Swarm) Reconnect(i int) bool {
	d := s.devs[i]
	if d.mq {
		return s.reconnectMQTT(d)
	}
	c := d.conn.Load()
	if c == nil {
		return false
	}
	s.events.add(i, int(d.node.Load()), evHangup)
	c.Close()
	return true
}

// Rotate gives device i a fresh token over its live session. The targeter
// sees the new token once the relay has confirmed it; a webhook sent with
// the old one in between gets 404, as a real caller would.
func (s *Swarm) Rotate(ctx context.Context, i int) error {
	d := s.devs[i]
	if d.mq {
		return errCannotRotate
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.conn.Load()
	if c == nil {
		return errNotConnected
	}
	tok := wire.NewToken()
	s.events.add(i, int(d.node.Load()), evRotating)
	if err := c.Rotate(ctx, tok); err != nil {
		return err
	}
	d.token.Store(&tok)
	s.events.add(i, int(d.node.Load()), evRotated)
	return nil
}

// HandleMessage is the device's acknowledgement: count the message's id,
// check it came to the right device, wait the configured ack delay, reply
// {"ok":true}.
func (d *simDevice) HandleMessage(ctx context.Context, m wire.Message) (int, []byte) {
	s := d.s
	s.inHandler.Add(1)
	defer s.inHandler.Add(-1)
	d.received(m.Body)
	if delay := s.ackDelay(); delay > 0 {
		sleepCtx(ctx, delay)
	}
	return 200, okReply
}

// received counts a message body that reached device d, for the ledger.
func (d *simDevice) received(body []byte) {
	s := d.s
	s.handled.Add(1)
	id, dev, ok := parseLT(body)
	switch {
	case !ok:
		s.unparsed.Add(1)
	case id >= s.issued.Load() || !s.seen.record(id, dev != uint64(d.idx)):
		s.stray.Add(1)
	case dev != uint64(d.idx):
		s.misrouted.Add(1)
	}
}

func (s *Swarm) ackDelay() time.Duration {
	d := s.cfg.AckDelay
	if j := s.cfg.AckJitter; j > 0 {
		d += rand.N(2*j+1) - j
	}
	return max(d, 0)
}

var ltKey = []byte(`"lt":[`)

// parseLT reads "lt":[ID,DEV] from a body without decoding it.
func parseLT(b []byte) (id, dev uint64, ok bool) {
	i := bytes.Index(b, ltKey)
	if i < 0 {
		return 0, 0, false
	}
	b = b[i+len(ltKey):]
	id, b, ok = parseUint(b)
	if !ok || len(b) == 0 || b[0] != ',' {
		return 0, 0, false
	}
	dev, b, ok = parseUint(b[1:])
	if !ok || len(b) == 0 || b[0] != ']' {
		return 0, 0, false
	}
	return id, dev, true
}

// parseUint reads decimal digits (at most 19) from the start of b.
func parseUint(b []byte) (v uint64, rest []byte, ok bool) {
	n := 0
	for n < len(b) && n < 19 && '0' <= b[n] && b[n] <= '9' {
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	return v, b[n:], n > 0
}

// Seen is how often message id reached a device, and whether it reached
// one other than its token's.
func (s *Swarm) Seen(id uint64) (count uint32, misrouted bool) { return s.seen.get(id) }

// SwarmCounts are the handlers' totals.
type SwarmCounts struct {
	Handled, Misrouted, Unparsed, Stray uint64
	Reconnects, DialErrors              uint64
}

// Counts returns the handlers' totals so far.
func (s *Swarm) Counts() SwarmCounts {
	return SwarmCounts{
		Handled:    s.handled.Load(),
		Misrouted:  s.misrouted.Load(),
		Unparsed:   s.unparsed.Load(),
		Stray:      s.stray.Load(),
		Reconnects: s.reconnects.Load(),
		DialErrors: s.dialErrors.Load(),
	}
}

// Settle waits until no handler is running, at most max: after an attack,
// so that late arrivals are counted before the ledger reads.
func (s *Swarm) Settle(ctx context.Context, max time.Duration) {
	deadline := time.Now().Add(max)
	for s.inHandler.Load() > 0 && time.Now().Before(deadline) && sleepCtx(ctx, 10*time.Millisecond) {
	}
}

// Close ends every session and waits for the devices' goroutines. It is
// idempotent.
func (s *Swarm) Close() {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		s.closeSockets()
	})
}

func (s *Swarm) closeSockets() {
	for _, t := range s.socks {
		t.Close()
		t.Conn.Close()
	}
}

// seenTable counts, per message id, how many times a device received it,
// and flags ids that reached the wrong device.
type seenTable struct{ idTable }

// idTable holds a uint32 per message id. It is lock-free: a fixed
// directory of chunks allocated on first use, so its size follows the run.
type idTable struct {
	chunks [seenChunks]atomic.Pointer[[seenChunkLen]atomic.Uint32]
}

const (
	seenChunkBits = 16
	seenChunkLen  = 1 << seenChunkBits
	seenChunks    = 1 << 12 // 2^28 ids, far beyond any bounded run
	seenMisrouted = 1 << 31 // flag bit; the count is the low bits
)

// slot is id's word; nil when id is beyond the table, or when its chunk
// does not exist yet and alloc is false.
func (t *idTable) slot(id uint64, alloc bool) *atomic.Uint32 {
	ci := id >> seenChunkBits
	if ci >= seenChunks {
		return nil
	}
	c := t.chunks[ci].Load()
	if c == nil {
		if !alloc {
			return nil
		}
		c = new([seenChunkLen]atomic.Uint32)
		if !t.chunks[ci].CompareAndSwap(nil, c) {
			c = t.chunks[ci].Load()
		}
	}
	return &c[id&(seenChunkLen-1)]
}

// set stores v for id; false when id is beyond the table.
func (t *idTable) set(id uint64, v uint32) bool {
	w := t.slot(id, true)
	if w == nil {
		return false
	}
	w.Store(v)
	return true
}

// get returns id's word, 0 if never set.
func (t *idTable) get(id uint64) uint32 {
	if w := t.slot(id, false); w != nil {
		return w.Load()
	}
	return 0
}

func (t *seenTable) record(id uint64, misrouted bool) bool {
	v := t.slot(id, true)
	if v == nil {
		return false
	}
	v.Add(1)
	if misrouted {
		v.Or(seenMisrouted)
	}
	return true
}

func (t *seenTable) get(id uint64) (count uint32, misrouted bool) {
	v := t.idTable.get(id)
	return v &^ seenMisrouted, v&seenMisrouted != 0
}
