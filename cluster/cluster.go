// Package cluster makes several relay nodes one service, over NATS: a
// webhook that reaches one node for a device connected to another is a NATS
// request, and the device's reply comes back as the NATS reply.
//
// A Cluster is the router's Mesh (router.SetMesh, which New calls): the
// router stays the one registry of which device holds a token, asks the
// cluster only for what is not bound on this node, and tells it what it
// binds; the cluster answers the other nodes' requests through the router
// alone (Lookup, Release), and knows nothing of sessions.
//
// Routing is by interest, not by a directory: a node subscribes, for each of
// its devices, to the subject PREFIX.dev.<hex of SHA-256(token)> (never the
// token), in one queue group, so that each request reaches one node. A
// request nobody is subscribed to comes back at once as "no responders":
// the device is connected nowhere, 404. Logins and rotations use the same
// subjects: a login claims its token from whichever node holds it (which
// closes that session, or lets a device sent away with GOAWAY move), a
// rotation asks whether its new token is held anywhere.
//
// A node serves at most MaxServing requests from other nodes at once and
// answers the rest busy at once. The requests for all its devices reach it
// through one queue of Pending: the NATS client drops a request that
// arrives while that queue is full and tells nobody, so its caller waits
// for its deadline; this package counts those drops
// (relay_cluster_dropped_total{reason="slow_consumer"}). A dropped request
// was never seen and cannot be answered: Pending must hold the largest
// burst that arrives faster than the node takes requests off the queue.
//
// NATS carries message bodies and replies but stores nothing: no
// JetStream, no KV. Whoever may subscribe to the subjects can read the
// bodies, so the connection takes NATS TLS and credentials.
package cluster

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pixelrelay/relay/internal/setting"
	"github.com/pixelrelay/relay/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Config configures a node's NATS connection. Start from DefaultConfig.
type Config struct {
	// URLs are NATS servers (nats://host:4222, tls://host:4222); one is
	// enough, a client learns the rest of a NATS cluster from it.
	URLs []string
	// Creds is a NATS credentials file (user JWT and NKey seed).
	Creds string
	// CA is a PEM file of the CA that signed the NATS servers'
	// certificates; Cert and Key, a client certificate, if the servers
	// ask for one.
	CA, Cert, Key string
	// Subject prefixes every subject: the nodes of one cluster share it,
	// and two clusters on one NATS keep apart with two.
	Subject string
	// Name names this node's connection in NATS monitoring.
	Name string
	// ClaimTimeout bounds how long a login waits for another node to let
	// its token go, and a rotation for the answer whether its new token is
	// held; past it the login goes on.
	ClaimTimeout time.Duration
	// MaxServing bounds the requests from other nodes served at once;
	// more are answered busy.
	MaxServing int
	// Pending bounds the requests from other nodes that have arrived and
	// wait to be served or answered busy, in one queue for all the node's
	// devices. One that arrives while it is full is dropped unanswered
	// (counted); each waiting one holds its body.
	Pending int

	Logger  *slog.Logger          // nil discards
	Metrics prometheus.Registerer // nil keeps the series private
}

// Defaults.
const (
	DefaultSubject      = "relay"
	DefaultClaimTimeout = 2 * time.Second
	DefaultMaxServing   = 10_000
	DefaultPending      = 4096
)

// MaxPending bounds Config.Pending: the queue is allocated whole, a
// pointer per request.
const MaxPending = 1 << 20

// DefaultConfig returns the defaults; URLs are the caller's.
func DefaultConfig() Config {
	return Config{Subject: DefaultSubject, ClaimTimeout: DefaultClaimTimeout, MaxServing: DefaultMaxServing, Pending: DefaultPending}
}

// Cluster is this node's part of the cluster: the router.Mesh of the
// node's router.
type Cluster struct {
	cfg    Config         // static
	router *router.Router // static: this node's registry, which serves other nodes' requests
	nc     *nats.Conn     // static after New
	log    *slog.Logger   // static

	mu   sync.Mutex // guards the fields below
	subs map[router.Key]*nats.Subscription
	// lossy holds the subscriptions nats.go dropped requests for (c.in was
	// full), each with how many of its drops dropped counts. nats.go
	// reports the first drop of a run only (ErrSlowConsumer) and counts
	// them all (Subscription.Dropped): the difference is added up at
	// every scrape, and before a subscription goes away.
	lossy   map[*nats.Subscription]int
	dropped int // requests nats.go dropped, as counted so far

	lastDropWarn time.Time // owned by nats.go's callback goroutine (dropsOf)

	in      chan *nats.Msg // every subscription's messages; nats.go drops what finds it full
	serving chan struct{}  // a slot per request from another node being served
	wg      sync.WaitGroup // the dispatcher and the requests it serves
	closed  chan struct{}
	close   sync.Once

	out    map[string]prometheus.Counter // outgoing deliveries by outcome; static
	served map[string]prometheus.Counter // requests from other nodes by op; static
}

// The headers of the cluster's messages. A delivery request carries the
// mode and the time left; its reply the device's status, or the router
// error that stood in for one.
const (
	hdrOp      = "Relay-Op"      // claim or held; absent: deliver
	hdrMode    = "Relay-Mode"    // a delivery's mode
	hdrQuery   = "Relay-Query"   // a delivery's query, when it has one
	hdrTimeout = "Relay-Timeout" // a delivery's time left, in milliseconds
	hdrStatus  = "Relay-Status"  // the device's HTTP-like status
	hdrPath    = "Relay-Path"    // the reply's router.Reply.Path, when it has one
	hdrError   = "Relay-Error"   // a router outcome's code (router.Outcome.Code) instead of a reply
	hdrClaim   = "Relay-Claim"   // the answer to a claim: free, taken, moved, limited
	hdrHeld    = "Relay-Held"    // the answer to held: yes or no
	hdrHop     = "Relay-Hop"     // set on a delivery forwarded once already

	opClaim = "claim"
	opHeld  = "held"
	queue   = "relay" // every node's device subscriptions form this queue group
	limited = "limited"
	// replyMargin is kept from a delivery's time left on the serving
	// node, so that its "timeout" reaches the caller's node before the
	// caller's own deadline.
	replyMargin = 20 * time.Millisecond
)

// delivered is relay_cluster_deliveries_total's label for a reply; the
// other labels are the router outcomes' codes.
const delivered = "delivered"

// Check reports the first setting that cannot work, the files it names
// included: the credentials, CA and client certificate are read and parsed
// as the NATS client reads them (never written, never printed). New checks
// the same way. The error is a *setting.Error named as cmd/relay's flag.
func (c *Config) Check() error {
	switch {
	case len(c.URLs) == 0:
		return setting.Errorf("nats", "cluster: no NATS URL")
	case c.Subject == "" || strings.ContainsAny(c.Subject, " *>"):
		return setting.Errorf("nats-subject", "cluster: subject prefix %q: want a NATS subject without wildcards", c.Subject)
	case c.ClaimTimeout <= 0:
		return setting.Errorf("ClaimTimeout", "cluster: %v: want a positive duration", c.ClaimTimeout)
	case c.MaxServing <= 0:
		return setting.Errorf("nats-max-serving", "cluster: %d: want a positive count", c.MaxServing)
	case c.Pending <= 0 || c.Pending > MaxPending:
		return setting.Errorf("nats-pending", "cluster: %d outside 1..%d", c.Pending, MaxPending)
	case c.Cert != "" && c.Key == "":
		return setting.Errorf("nats-key", "cluster: a NATS client certificate needs its key")
	case c.Key != "" && c.Cert == "":
		return setting.Errorf("nats-cert", "cluster: a NATS client key needs its certificate")
	}
	for i, u := range c.URLs {
		// As the NATS client reads them: a URL without a scheme is nats://.
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		if _, err := url.Parse(u); err != nil {
			// url.Error quotes the URL, and a URL may hold a password.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return setting.Errorf("nats", "cluster: NATS URL %d of %d: %w", i+1, len(c.URLs), err)
		}
	}
	// The options read the credentials' JWT, the CA and the client pair,
	// as they will in New.
	o := nats.GetDefaultOptions()
	for _, f := range c.fileOptions() {
		if err := f.opt(&o); err != nil {
			return setting.Errorf(f.flag, "cluster: NATS: %w", err)
		}
	}
	// The credentials' seed is read only to sign a connection's nonce:
	// one that does not parse would fail every connection, so sign one
	// here.
	if o.SignatureCB != nil {
		if _, err := o.SignatureCB([]byte("check")); err != nil {
			return setting.Errorf("nats-creds", "cluster: NATS credentials %s: %w", c.Creds, err)
		}
	}
	return nil
}

// fileOption is a NATS option that reads a file, and the flag naming it.
type fileOption struct {
	flag string
	opt  nats.Option
}

// fileOptions are the NATS options that read the files c names.
func (c *Config) fileOptions() []fileOption {
	var opts []fileOption
	if c.Creds != "" {
		opts = append(opts, fileOption{"nats-creds", nats.UserCredentials(c.Creds)})
	}
	if c.CA != "" {
		opts = append(opts, fileOption{"nats-ca", nats.RootCAs(c.CA)})
	}
	if c.Cert != "" {
		opts = append(opts, fileOption{"nats-cert", nats.ClientCert(c.Cert, c.Key)})
	}
	return opts
}

// New connects to NATS, serves the other nodes' requests for r's tokens
// through r, and plugs itself into r as its mesh: call it before r is used.
// It returns without waiting for NATS: a node whose NATS is down starts,
// serves its own devices, and joins when NATS is back.
func New(r *router.Router, cfg Config) (*Cluster, error) {
	c, err := connect(r, cfg)
	if err != nil {
		return nil, err
	}
	c.wg.Go(c.dispatch)
	return c, nil
}

// connect is New without serving the requests that reach the node: they
// wait in c.in until dispatch runs (the tests of a full queue need that).
func connect(r *router.Router, cfg Config) (*Cluster, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	c := &Cluster{cfg: cfg, router: r, log: cfg.Logger,
		subs:    make(map[router.Key]*nats.Subscription),
		lossy:   make(map[*nats.Subscription]int),
		in:      make(chan *nats.Msg, cfg.Pending),
		serving: make(chan struct{}, cfg.MaxServing),
		closed:  make(chan struct{}),
		out:     make(map[string]prometheus.Counter),
		served:  make(map[string]prometheus.Counter),
	}
	m := promauto.With(cfg.Metrics)
	out := m.NewCounterVec(prometheus.CounterOpts{Name: "relay_cluster_deliveries_total",
		Help: "Webhooks this node sent to the node holding the device, over NATS, by outcome."}, []string{"outcome"})
	c.out[delivered] = out.WithLabelValues(delivered)
	for _, o := range router.Outcomes() {
		c.out[o.Code()] = out.WithLabelValues(o.Code())
	}
	served := m.NewCounterVec(prometheus.CounterOpts{Name: "relay_cluster_served_total",
		Help: "Requests from other nodes served: deliver, claim (a login elsewhere), held (a rotation elsewhere), busy (refused: too many at once)."}, []string{"op"})
	for _, op := range []string{"deliver", opClaim, opHeld, "busy"} {
		c.served[op] = served.WithLabelValues(op)
	}
	cfg.Metrics.MustRegister(dropCounter{c})
	opts := []nats.Option{
		nats.Name(cfg.Name),
		// A node asks the others, never itself: a request that comes back
		// to a node that no longer holds the token would answer no_device
		// where another node may.
		nats.NoEcho(),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		// A NATS server that stopped answering is noticed in seconds,
		// not the default minutes.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if !nc.IsClosed() {
				c.log.Warn("cluster: NATS disconnected; remote deliveries answer 503 until it is back", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("cluster: NATS connected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) && sub != nil && c.dropsOf(sub) {
				return
			}
			c.log.Warn("cluster: NATS error", "err", err)
		}),
	}
	for _, f := range cfg.fileOptions() {
		opts = append(opts, f.opt)
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS: %w", err)
	}
	c.nc = nc
	m.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_cluster_connected", Help: "1 while this node is connected to NATS, else 0."}, func() float64 {
		if nc.IsConnected() {
			return 1
		}
		return 0
	})
	r.SetMesh(c)
	return c, nil
}

// Connected reports whether the node is connected to NATS now.
func (c *Cluster) Connected() bool { return c.nc.IsConnected() }

// Close leaves the cluster: it unsubscribes what is left, answers every
// request already routed here, then closes the NATS connection. It stays
// its router's mesh, as a node whose NATS is gone for good: claims are
// Free, nothing is held elsewhere, remote deliveries are ErrUnavailable.
func (c *Cluster) Close() {
	c.close.Do(func() {
		c.mu.Lock()
		subs := c.subs
		c.subs = nil
		c.countDrops()
		c.mu.Unlock()
		for _, sub := range subs {
			sub.Drain()
		}
		c.flush(context.Background())
		close(c.closed)
		c.wg.Wait()
		c.nc.Close()
	})
}

func (c *Cluster) subject(key router.Key) string {
	return c.cfg.Subject + ".dev." + hex.EncodeToString(key[:])
}

// keyOf parses a device subject back into its key.
func (c *Cluster) keyOf(subject string) (router.Key, bool) {
	var k router.Key
	h, ok := strings.CutPrefix(subject, c.cfg.Subject+".dev.")
	if !ok || len(h) != 2*len(k) {
		return k, false
	}
	_, err := hex.Decode(k[:], []byte(h))
	return k, err == nil
}

// Deliver implements router.Mesh: the router calls it for a key not bound
// on this node, which goes to the node holding it over NATS.
func (c *Cluster) Deliver(ctx context.Context, key router.Key, m router.Message) (router.Reply, error) {
	rep, err := c.deliverRemote(ctx, key, m, false)
	label := delivered
	if err != nil {
		label = codeOf(err)
	}
	c.out[label].Inc()
	return rep, err
}

// codeOf is the code of err's router outcome, which every error of a
// delivery wraps; bad_reply for one that does not (a bug), as the bus would
// say it.
func codeOf(err error) string {
	if code := router.CodeOf(err); code != "" {
		return code
	}
	return router.ErrBadReply.Code()
}

// deliverRemote sends m to the node holding key; forwarded marks a request
// passed on by a node that was routed it but no longer holds key.
func (c *Cluster) deliverRemote(ctx context.Context, key router.Key, m router.Message, forwarded bool) (router.Reply, error) {
	if !c.nc.IsConnected() {
		return router.Reply{}, router.ErrUnavailable
	}
	msg := nats.NewMsg(c.subject(key))
	msg.Header.Set(hdrMode, m.Mode)
	if m.Query != "" {
		msg.Header.Set(hdrQuery, m.Query)
	}
	if forwarded {
		msg.Header.Set(hdrHop, "1")
	}
	if dl, ok := ctx.Deadline(); ok {
		msg.Header.Set(hdrTimeout, strconv.FormatInt(time.Until(dl).Milliseconds(), 10))
	}
	msg.Data = m.Body
	rep, err := c.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrNoResponders):
		return router.Reply{}, router.ErrNoDevice
	case ctx.Err() != nil, errors.Is(err, nats.ErrTimeout):
		if err := router.Canceled(ctx); err != nil {
			return router.Reply{}, err
		}
		return router.Reply{}, router.ErrTimeout
	default:
		return router.Reply{}, fmt.Errorf("%w: %v", router.ErrUnavailable, err)
	}
	if code := rep.Header.Get(hdrError); code != "" {
		if o := router.OutcomeOf(code); o != nil {
			return router.Reply{}, o
		}
		return router.Reply{}, fmt.Errorf("%w: unknown error %q from another node", router.ErrBadReply, code)
	}
	status, err := strconv.Atoi(rep.Header.Get(hdrStatus))
	if err != nil || status < 200 || status > 599 {
		return router.Reply{}, fmt.Errorf("%w: status %q from another node", router.ErrBadReply, rep.Header.Get(hdrStatus))
	}
	path := rep.Header.Get(hdrPath)
	if !router.ValidPath(path) {
		return router.Reply{}, fmt.Errorf("%w: path %q from another node", router.ErrBadReply, path)
	}
	return router.Reply{Status: status, Body: rep.Data, Path: path}, nil
}

// Bound implements router.Mesh: it subscribes to key's subject and waits
// until the NATS server has the interest.
func (c *Cluster) Bound(ctx context.Context, key router.Key) {
	c.mu.Lock()
	if _, ok := c.subs[key]; ok || c.subs == nil {
		c.mu.Unlock()
		return
	}
	sub, err := c.nc.ChanQueueSubscribe(c.subject(key), queue, c.in)
	if err != nil {
		c.mu.Unlock()
		c.log.Warn("cluster: subscribe failed; the device is reachable on this node only", "err", err)
		return
	}
	c.subs[key] = sub
	c.mu.Unlock()
	c.flush(ctx)
}

// Unbound implements router.Mesh: it unsubscribes from key's subject and
// waits until the NATS server knows. A request the server routed here
// before that is still served (Drain, not Unsubscribe, which would drop
// it and leave its caller to time out): it no longer finds the device
// here and is forwarded to where it is now.
func (c *Cluster) Unbound(ctx context.Context, key router.Key) {
	c.mu.Lock()
	sub := c.subs[key]
	delete(c.subs, key)
	if sub != nil {
		// Now: Dropped fails once the drain is done, and nats.go's report
		// of a drop may come later still.
		c.countDropsOf(sub)
	}
	c.mu.Unlock()
	if sub == nil {
		return
	}
	sub.Drain()
	c.flush(ctx)
}

// flush waits until the NATS server has processed what this node sent
// (subscriptions included), if it is connected; while it is not, nats.go
// sends every subscription again once it is.
func (c *Cluster) flush(ctx context.Context) {
	if !c.nc.IsConnected() {
		return
	}
	if _, ok := ctx.Deadline(); !ok { // FlushWithContext wants one
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.ClaimTimeout)
		defer cancel()
	}
	if err := c.nc.FlushWithContext(ctx); err != nil {
		c.log.Warn("cluster: NATS flush failed; a binding may reach the other nodes late", "err", err)
	}
}

// Claim implements router.Mesh: it asks the node that holds key to let it
// go (router.Release there). Without an answer (no other node holds it,
// NATS is down, the holder does not answer in ClaimTimeout) the token is
// Free.
func (c *Cluster) Claim(ctx context.Context, key router.Key) (router.Claim, error) {
	rep, ok := c.ask(ctx, key, opClaim)
	if !ok {
		return router.Free, nil
	}
	switch rep.Header.Get(hdrClaim) {
	case "taken":
		return router.Taken, nil
	case "moved":
		return router.Moved, nil
	case limited:
		return router.Free, router.ErrTakeoverLimited
	}
	return router.Free, nil
}

// Held implements router.Mesh.
func (c *Cluster) Held(ctx context.Context, key router.Key) bool {
	rep, ok := c.ask(ctx, key, opHeld)
	return ok && rep.Header.Get(hdrHeld) == "yes"
}

// ask sends op for key to the node that holds it and returns the answer;
// false when there is none.
func (c *Cluster) ask(ctx context.Context, key router.Key, op string) (*nats.Msg, bool) {
	if !c.nc.IsConnected() {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ClaimTimeout)
	defer cancel()
	msg := nats.NewMsg(c.subject(key))
	msg.Header.Set(hdrOp, op)
	rep, err := c.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		if !errors.Is(err, nats.ErrNoResponders) {
			c.log.Warn("cluster: no answer from the node holding a token", "op", op, "err", err)
		}
		return nil, false
	}
	return rep, true
}

// dispatch hands each request from another node to a goroutine of its
// own: a delivery may wait for its device for seconds. It never waits for
// a serving slot, so that c.in empties as fast as this one goroutine can
// go: with every slot taken, it answers busy. Once Close has begun, it
// serves what is queued and returns.
func (c *Cluster) dispatch() {
	for {
		var m *nats.Msg
		select {
		case m = <-c.in:
		case <-c.closed:
			select {
			case m = <-c.in:
			default:
				return
			}
		}
		select {
		case c.serving <- struct{}{}:
		default:
			c.served["busy"].Inc()
			respondError(m, router.ErrBusy)
			continue
		}
		c.wg.Go(func() {
			defer func() { <-c.serving }()
			c.serve(m)
		})
	}
}

// serve answers one request from another node for one of this node's
// tokens.
func (c *Cluster) serve(m *nats.Msg) {
	key, ok := c.keyOf(m.Subject)
	if !ok {
		return
	}
	switch m.Header.Get(hdrOp) {
	case opClaim:
		c.served[opClaim].Inc()
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ClaimTimeout)
		defer cancel()
		claim, err := c.router.Release(ctx, key)
		answer := claim.String()
		if errors.Is(err, router.ErrTakeoverLimited) {
			answer = limited
		}
		rep := nats.NewMsg(m.Reply)
		rep.Header.Set(hdrClaim, answer)
		m.RespondMsg(rep)
	case opHeld:
		c.served[opHeld].Inc()
		rep := nats.NewMsg(m.Reply)
		held := "no"
		if c.router.Lookup(key) != nil {
			held = "yes"
		}
		rep.Header.Set(hdrHeld, held)
		m.RespondMsg(rep)
	default:
		c.served["deliver"].Inc()
		c.serveDelivery(key, m)
	}
}

func (c *Cluster) serveDelivery(key router.Key, m *nats.Msg) {
	left, err := strconv.ParseInt(m.Header.Get(hdrTimeout), 10, 64)
	if err != nil || left <= 0 {
		respondError(m, router.ErrTimeout)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(left)*time.Millisecond-replyMargin)
	defer cancel()
	msg := router.Message{Mode: m.Header.Get(hdrMode), Query: m.Header.Get(hdrQuery), Body: m.Data}
	var rep router.Reply
	if d := c.router.Lookup(key); d != nil {
		rep, err = d.Deliver(ctx, msg)
	} else if m.Header.Get(hdrHop) == "" {
		// Routed here while the device moved away (or was taken over):
		// pass it on, once, to wherever the token is now.
		rep, err = c.deliverRemote(ctx, key, msg, true)
	} else {
		err = router.ErrNoDevice
	}
	if err != nil {
		respondError(m, err)
		return
	}
	r := nats.NewMsg(m.Reply)
	r.Header.Set(hdrStatus, strconv.Itoa(rep.Status))
	if rep.Path != "" {
		r.Header.Set(hdrPath, rep.Path)
	}
	r.Data = rep.Body
	m.RespondMsg(r)
}

// respondError answers m with the code of err's router outcome: the code
// the caller's node parses back (router.OutcomeOf) and answers in HTTP.
func respondError(m *nats.Msg, err error) {
	r := nats.NewMsg(m.Reply)
	r.Header.Set(hdrError, codeOf(err))
	m.RespondMsg(r)
}

// dropsOf takes nats.go's report that it dropped a request for sub, c.in
// being full, and says whether sub is one of the device subscriptions
// (whose drops relay_cluster_dropped_total counts). It warns at most once
// a minute: in an overload every device subscription may report.
func (c *Cluster) dropsOf(sub *nats.Subscription) bool {
	if _, ok := c.keyOf(sub.Subject); !ok || sub.Queue != queue {
		return false
	}
	c.mu.Lock()
	c.countDropsOf(sub)
	dropped := c.dropped
	c.mu.Unlock()
	if now := time.Now(); now.Sub(c.lastDropWarn) >= time.Minute {
		c.lastDropWarn = now
		c.log.Warn("cluster: requests from other nodes dropped unanswered, more arrived at once than the pending queue holds; their callers wait for their deadline",
			"dropped_total", dropped, "pending", cap(c.in))
	}
	return true
}

// countDrops adds up what nats.go dropped for every lossy subscription and
// forgets those that are gone. c.mu must be held.
func (c *Cluster) countDrops() {
	for sub := range c.lossy {
		c.countDropsOf(sub)
	}
}

// countDropsOf adds what nats.go dropped for sub since it was last
// counted, and keeps sub in lossy if it dropped any. c.mu must be held.
func (c *Cluster) countDropsOf(sub *nats.Subscription) {
	n, err := sub.Dropped()
	if err != nil { // unsubscribed, drained: nothing more to drop
		delete(c.lossy, sub)
		return
	}
	if n > 0 {
		c.dropped += n - c.lossy[sub]
		c.lossy[sub] = n
	}
}

// dropCounter is relay_cluster_dropped_total: requests from other nodes
// that reached this node and were never answered.
type dropCounter struct{ c *Cluster }

var dropDesc = prometheus.NewDesc("relay_cluster_dropped_total",
	"Requests from other nodes that reached this node and were dropped unanswered, by reason: slow_consumer (more arrived at once than the pending queue holds). Their callers waited for their deadline.",
	[]string{"reason"}, nil)

func (d dropCounter) Describe(ch chan<- *prometheus.Desc) { ch <- dropDesc }

func (d dropCounter) Collect(ch chan<- prometheus.Metric) {
	d.c.mu.Lock()
	d.c.countDrops()
	n := d.c.dropped
	d.c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(dropDesc, prometheus.CounterValue, float64(n), "slow_consumer")
}
