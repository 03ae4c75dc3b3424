// Package device is the device side of the relay protocol: it dials the
// relay, logs in with the device's token, answers each message through a
// Handler, rotates the token over the live connection, and (Agent) keeps a
// session up with reconnects. cmd/device, the load-test swarm and the tests
// all use it.
package device

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/webtransport-go"
)

// Handler answers one message with an HTTP-like status (200-599) and a JSON
// reply. It may be called concurrently. m.Body is valid until it returns.
// ctx ends with the connection, and, when the relay said how long it
// waits (protocol version 2), at 90% of that: the rest is the REPLY's
// time to reach the relay, so that a handler that runs out of time can
// still say why before the relay answers the caller 504.
type Handler interface {
	HandleMessage(ctx context.Context, m wire.Message) (status int, reply []byte)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m wire.Message) (int, []byte)

// HandleMessage calls f.
func (f HandlerFunc) HandleMessage(ctx context.Context, m wire.Message) (int, []byte) {
	return f(ctx, m)
}

// Options configure Dial.
type Options struct {
	// TLS verifies the relay (RootCAs, ServerName). NextProtos is set by Dial.
	TLS *tls.Config
	// Agent names the device software in the login; optional, not secret.
	Agent string
	// KeepAlive is the QUIC keep-alive period. It must be shorter than NAT
	// UDP mapping timeouts (often 30 s); default 20 s.
	KeepAlive time.Duration
	// LoginTimeout bounds dial plus login; default 10 s.
	LoginTimeout time.Duration
	// UDP, if set, dials from this shared socket (the load-test swarm puts
	// many devices on one socket).
	UDP *quic.Transport
	// Sessions keeps TLS sessions for resumption, so that a device coming
	// back to a relay (or to a node sharing its ticket secret) skips the
	// certificate chain check. Nil: TLS.ClientSessionCache if set, else
	// one cache for the whole process (Sessions).
	Sessions tls.ClientSessionCache
	// Tokens keeps the address-validation tokens relays give (QUIC
	// NEW_TOKEN): a device that shows one when it comes back skips the
	// Retry a relay under a handshake spike asks for, also a restarted
	// relay that kept its key. Nil: one store for the whole process
	// (Tokens), right for one device per process.
	Tokens quic.TokenStore
	// Transport is what to dial: raw QUIC (the zero value); WebTransport,
	// https://ADDR/connect over HTTP/3; or WebSocket, wss://ADDR/connect
	// over TCP, for networks that let no UDP through, its streams
	// multiplexed in WebSocket messages (PROTOCOL §2.5). The protocol
	// inside is the same.
	Transport transport.Kind
	// MoveFirst keeps a session that got GOAWAY answering messages until
	// Leave is called, so that the caller can log in elsewhere first
	// (make-before-break, PROTOCOL §6.6). Without it the session leaves
	// at once. The Agent sets it.
	MoveFirst bool
	// Version is the newest minor protocol version to offer, between
	// wire.MinVersion and wire.Version; 0 is wire.Version. Tests use it
	// to be an older device.
	Version uint8
}

// Sessions is the process's TLS session cache, for dials whose
// Options.Sessions and TLS.ClientSessionCache are nil.
var Sessions = tls.NewLRUClientSessionCache(16)

// Tokens is the process's store of relays' address-validation tokens, for
// dials whose Options.Tokens is nil.
var Tokens = quic.NewLRUTokenStore(16, 4)

// Defaults for Options.
const (
	DefaultKeepAlive    = 20 * time.Second
	DefaultLoginTimeout = 10 * time.Second
	// maxIncomingStreams is QUIC's largest stream limit (2^60): with any
	// lower one, quic-go sends a MAX_STREAMS frame each time a message's
	// stream ends (quic-go issue #2872), a packet of its own that the
	// relay must receive and acknowledge, about 15% of the relay's CPU
	// per webhook. The bound is maxConcurrentMessages instead.
	maxIncomingStreams = 1 << 60
	// maxConcurrentMessages bounds the messages this device handles at
	// once; the relay keeps within its own, lower, Welcome.MaxInflight,
	// and the streams of a relay that does not are reset.
	maxConcurrentMessages = 256
	// messageReadTimeout bounds reading a message the relay has started.
	messageReadTimeout = 10 * time.Second
	// goAwayLinger bounds the wait for the relay to close after GoAway.
	goAwayLinger = 10 * time.Second
)

// Errors.
var (
	// ErrReplaced: another login with this device's token took the session.
	ErrReplaced = errors.New("device: session replaced by another login with the same token")
	// ErrClosed: the connection was closed locally.
	ErrClosed = errors.New("device: connection closed")
)

// RefusedError is the relay's refusal of a login or a rotation.
type RefusedError struct {
	Reason  wire.Reason
	Message string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("device: relay refused: %s: %s", e.Reason, e.Message)
}

// Permanent reports whether retrying with the same token and software
// cannot succeed.
func (e *RefusedError) Permanent() bool {
	return e.Reason == wire.ReasonToken || e.Reason == wire.ReasonVersion
}

// GoAwayError says the relay sent the device away: reconnect after
// ReconnectAfter, to Redirect if set.
type GoAwayError struct{ wire.GoAway }

func (e *GoAwayError) Error() string {
	return fmt.Sprintf("device: relay sent go-away (%s), reconnect after %v", e.Reason, e.ReconnectAfter)
}

// Conn is a logged-in device session.
type Conn struct {
	conn    transport.Conn // static
	ctrl    transport.Stream
	welcome wire.Welcome // static after Dial

	ctrlMu   sync.Mutex // serializes writes to ctrl
	rotateMu sync.Mutex // one rotation at a time
	rotated  chan error // control reader -> Rotate

	goAway   chan struct{} // closed when a GoAway arrives
	goAwayF  wire.GoAway   // written before goAway is closed
	ctrlDone chan struct{} // closed when the control reader ends
	ctrlErr  error         // written before ctrlDone is closed

	moveFirst bool          // Options.MoveFirst; static
	left      chan struct{} // closed by leave: Serve hangs up
	leaveOnce sync.Once
}

// Dial connects to the relay at addr (HOST:PORT, UDP) and logs in with
// token. A refusal is a *RefusedError.
func Dial(ctx context.Context, addr, token string, opt Options) (*Conn, error) {
	if opt.KeepAlive <= 0 {
		opt.KeepAlive = DefaultKeepAlive
	}
	if opt.LoginTimeout <= 0 {
		opt.LoginTimeout = DefaultLoginTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, opt.LoginTimeout)
	defer cancel()

	tlsConf := &tls.Config{}
	if opt.TLS != nil {
		tlsConf = opt.TLS.Clone()
	}
	if opt.Tokens == nil {
		opt.Tokens = Tokens
	}
	switch {
	case opt.Sessions != nil:
		tlsConf.ClientSessionCache = opt.Sessions
	case tlsConf.ClientSessionCache == nil:
		tlsConf.ClientSessionCache = Sessions
	}
	qconf := &quic.Config{
		TokenStore:            opt.Tokens,
		KeepAlivePeriod:       opt.KeepAlive,
		MaxIdleTimeout:        max(2*opt.KeepAlive, 30*time.Second),
		MaxIncomingStreams:    maxIncomingStreams,
		MaxIncomingUniStreams: -1,
	}
	dial := func(ctx context.Context, addr string, tlsConf *tls.Config, qconf *quic.Config) (*quic.Conn, error) {
		if opt.UDP == nil {
			return quic.DialAddr(ctx, addr, tlsConf, qconf)
		}
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, err
		}
		return opt.UDP.Dial(ctx, ua, tlsConf, qconf)
	}
	var (
		tc      transport.Conn
		cleanup func()
	)
	switch {
	case opt.Transport == transport.KindWebSocket:
		tlsConf.NextProtos = []string{"http/1.1"}
		d := &websocket.Dialer{TLSClientConfig: tlsConf, HandshakeTimeout: opt.LoginTimeout}
		wc, rsp, err := d.DialContext(ctx, "wss://"+addr+"/connect", nil)
		if err != nil {
			if rsp != nil {
				err = fmt.Errorf("HTTP %d: %w", rsp.StatusCode, err)
			}
			return nil, fmt.Errorf("device: websocket dial %s: %w", addr, err)
		}
		ws := transport.WebSocket(wc, nil, transport.WSOptions{
			Client:             true,
			MaxIncomingStreams: maxConcurrentMessages,
			// The largest MESSAGE frame: the relay announces its own
			// bound only in WELCOME, after the streams exist.
			MaxStreamBuffer: wire.HeaderLen + wire.MaxPayload,
			KeepAlive:       opt.KeepAlive,
			IdleTimeout:     max(2*opt.KeepAlive, 30*time.Second),
		})
		tc, cleanup = ws, func() { ws.Close(wire.CloseNormal, "") }
	case opt.Transport == transport.KindWebTransport:
		// webtransport-go needs these and sets ALPN h3 itself.
		qconf.EnableDatagrams = true
		qconf.EnableStreamResetPartialDelivery = true
		qconf.MaxIncomingUniStreams = 8
		d := &webtransport.Transport{TLSClientConfig: tlsConf, QUICConfig: qconf, DialAddr: dial}
		rsp, sess, err := d.Dial(ctx, "https://"+addr+"/connect", nil)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("device: webtransport dial %s: %w", addr, err)
		}
		if rsp.StatusCode != http.StatusOK {
			d.Close()
			return nil, fmt.Errorf("device: webtransport dial %s: HTTP %d", addr, rsp.StatusCode)
		}
		// The session rides on a QUIC connection of its own; end both.
		cleanup = func() { d.Close() }
		context.AfterFunc(sess.Context(), cleanup)
		tc = transport.WebTransport(sess)
	default:
		tlsConf.NextProtos = []string{wire.ALPN}
		qc, err := dial(ctx, addr, tlsConf, qconf)
		if noALPN(err) {
			return nil, &RefusedError{Reason: wire.ReasonVersion, Message: "the relay speaks no " + wire.ALPN + " (TLS no_application_protocol)"}
		}
		if err != nil {
			return nil, fmt.Errorf("device: dial %s: %w", addr, err)
		}
		tc = transport.QUIC(qc)
		cleanup = func() { qc.CloseWithError(wire.CloseNormal, "") }
	}
	c, err := login(ctx, tc, token, opt)
	if err != nil {
		cleanup()
		return nil, err
	}
	return c, nil
}

func login(ctx context.Context, tc transport.Conn, token string, opt Options) (*Conn, error) {
	ctrl, err := tc.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("device: open control stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		ctrl.SetDeadline(dl)
	}
	offer := opt.Version
	if offer == 0 || offer > wire.Version {
		offer = wire.Version
	}
	if _, err := ctrl.Write(wire.Login{Version: offer, Token: []byte(token), Agent: opt.Agent}.Append(nil)); err != nil {
		return nil, fmt.Errorf("device: send login: %w", err)
	}
	// A relay that breaks the protocol at login is closed with 0x1 (§7.1).
	broken := func(err error) (*Conn, error) {
		tc.Close(wire.CloseProtocol, err.Error())
		return nil, err
	}
	t, p, err := wire.ReadFrame(ctrl, wire.MaxControlPayload)
	if err != nil {
		if code, reason, ok := transport.PeerCloseCode(err); ok && code == wire.CloseRefused {
			return nil, &RefusedError{Reason: reasonByName(reason), Message: "closed: " + reason}
		}
		if transport.ResetByPeer(err) {
			tc.Close(wire.CloseProtocol, controlResetReason)
			return nil, fmt.Errorf("device: reading WELCOME: %w", errControlReset)
		}
		if err == io.EOF || errors.Is(err, wire.ErrTooLarge) || errors.Is(err, io.ErrUnexpectedEOF) {
			return broken(fmt.Errorf("%w: reading WELCOME: %v", wire.ErrMalformed, err))
		}
		return nil, fmt.Errorf("device: read welcome: %w", err)
	}
	switch t {
	case wire.FrameWelcome:
	case wire.FrameRefuse:
		r, err := wire.ParseRefuse(p)
		if err != nil {
			return broken(err)
		}
		return nil, &RefusedError{Reason: r.Reason, Message: r.Message}
	default:
		return broken(wire.Expect(t, wire.FrameWelcome))
	}
	w, err := wire.ParseWelcome(p)
	if err != nil {
		return broken(err)
	}
	// The relay answers with the highest version both speak, never more
	// than offered; one below MinVersion is a relay too old for this
	// device, which no retry fixes.
	switch {
	case w.Version > offer:
		return broken(fmt.Errorf("%w: WELCOME version %d above the %d offered", wire.ErrMalformed, w.Version, offer))
	case w.Version < wire.MinVersion:
		tc.Close(wire.CloseNormal, "")
		return nil, &RefusedError{Reason: wire.ReasonVersion, Message: fmt.Sprintf("relay speaks only version %d; this device needs %d..%d", w.Version, wire.MinVersion, wire.Version)}
	}
	ctrl.SetDeadline(time.Time{})
	c := &Conn{
		conn:     tc,
		ctrl:     ctrl,
		welcome:  w,
		rotated:  make(chan error, 1),
		goAway:   make(chan struct{}),
		ctrlDone: make(chan struct{}),
		left:     make(chan struct{}),

		moveFirst: opt.MoveFirst,
	}
	go c.readControl()
	return c, nil
}

// noALPN reports whether err is a handshake the relay failed with TLS alert
// no_application_protocol (QUIC CRYPTO_ERROR 0x178): it speaks no version
// of the protocol this device offered, which no retry fixes (§1).
func noALPN(err error) bool {
	const noApplicationProtocol = 0x100 + 120
	var te *quic.TransportError
	return errors.As(err, &te) && te.Remote && te.ErrorCode == noApplicationProtocol
}

// reasonByName recovers a Reason from a close reason text.
func reasonByName(s string) wire.Reason {
	for r := wire.ReasonVersion; r <= wire.ReasonInternal; r++ {
		if r.String() == s {
			return r
		}
	}
	return wire.ReasonInternal
}

// Welcome returns what the relay announced at login.
func (c *Conn) Welcome() wire.Welcome { return c.welcome }

// Context ends when the connection closes.
func (c *Conn) Context() context.Context { return c.conn.Context() }

// Close hangs up.
func (c *Conn) Close() error { return c.conn.Close(wire.CloseNormal, "") }

// readControl reads the relay's control frames until the connection ends.
func (c *Conn) readControl() {
	defer close(c.ctrlDone)
	for {
		t, p, err := wire.ReadFrame(c.ctrl, wire.MaxControlPayload)
		if err == io.EOF {
			// The relay ends its control stream only after REFUSE; a live
			// session's ending is its close, never a FIN.
			c.protocolError(fmt.Errorf("%w: relay ended the control stream", wire.ErrMalformed))
			return
		}
		if err != nil {
			if transport.ResetByPeer(err) {
				c.controlReset()
				return
			}
			c.ctrlErr = err
			return
		}
		switch t {
		case wire.FrameRotated, wire.FrameRefuse:
			var res error
			if t == wire.FrameRefuse {
				r, err := wire.ParseRefuse(p)
				if err != nil {
					c.protocolError(err)
					return
				}
				res = &RefusedError{Reason: r.Reason, Message: r.Message}
			}
			select {
			case c.rotated <- res:
			default:
				c.protocolError(fmt.Errorf("%w: %s without a rotation", wire.ErrUnexpected, t))
				return
			}
		case wire.FrameGoAway:
			g, err := wire.ParseGoAway(p)
			if err != nil {
				c.protocolError(err)
				return
			}
			select {
			case <-c.goAway: // a second GoAway changes nothing
			default:
				c.goAwayF = g
				close(c.goAway)
				if !c.moveFirst {
					c.Leave()
				}
			}
		default:
			c.protocolError(fmt.Errorf("%w: %s on the control stream", wire.ErrUnexpected, t))
			return
		}
	}
}

func (c *Conn) protocolError(err error) {
	c.ctrlErr = err
	c.conn.Close(wire.CloseProtocol, err.Error())
}

// errControlReset: the relay reset the control stream, which is never reset
// (PROTOCOL §7.4). The device closes with 0x1 and controlResetReason, the
// reason text the relay uses for the same fault.
var errControlReset = fmt.Errorf("%w: the relay reset the control stream", wire.ErrUnexpected)

const controlResetReason = "control stream reset"

// controlReset closes the connection for a reset control stream; the
// control reader and Rotate report errControlReset.
func (c *Conn) controlReset() {
	c.ctrlErr = errControlReset
	c.conn.Close(wire.CloseProtocol, controlResetReason)
}

// Rotate rebinds the live session to token. When it returns nil the relay
// routes the new token to this device and the old one nowhere.
func (c *Conn) Rotate(ctx context.Context, token string) error {
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	c.ctrlMu.Lock()
	_, err := c.ctrl.Write(wire.Rotate{Token: []byte(token)}.Append(nil))
	c.ctrlMu.Unlock()
	if transport.ResetByPeer(err) {
		// The relay stopped reading its control stream (STOP_SENDING).
		c.conn.Close(wire.CloseProtocol, controlResetReason)
		return fmt.Errorf("device: send rotate: %w", errControlReset)
	}
	if err != nil {
		return fmt.Errorf("device: send rotate: %w", err)
	}
	select {
	case err := <-c.rotated:
		return err
	case <-c.ctrlDone:
		return fmt.Errorf("device: connection ended during rotation: %w", c.closeCause(c.ctrlErr))
	case <-ctx.Done():
		// The answer may still come; the connection cannot be trusted to
		// pair it with the next rotation, so end it.
		c.conn.Close(wire.CloseNormal, "rotation abandoned")
		return ctx.Err()
	}
}

// Serve answers messages with h until the connection ends or ctx is done.
// After a GOAWAY it hangs up (at once, or with Options.MoveFirst when Leave
// is called) and returns a *GoAwayError; a takeover returns ErrReplaced.
//
// Hanging up is ending the control stream: the relay then reads the reply
// to every message it has opened and closes. Messages that arrive until
// then are answered too, since the relay waits for them; if the relay does
// not close within 10 s, Serve closes with 0x4.
func (c *Conn) Serve(ctx context.Context, h Handler) error {
	var wg sync.WaitGroup // the handlers; Wait only once the accept loop ended
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { c.conn.Close(wire.CloseNormal, "") })
	defer stop()
	accepted := make(chan error, 1)
	go func() {
		slots := make(chan struct{}, maxConcurrentMessages)
		for {
			str, err := c.conn.AcceptStream(context.Background())
			if err != nil {
				accepted <- err
				return
			}
			select {
			case slots <- struct{}{}:
			default:
				str.Abort(wire.StreamCancelled) // over the relay's own limit
				continue
			}
			wg.Go(func() {
				defer func() { <-slots }()
				c.handle(str, h)
			})
		}
	}()
	select {
	case err := <-accepted:
		// Accept fails only once the connection is closing; return when
		// it is closed, so that callers never see a half-dead session.
		<-c.conn.Context().Done()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.closeCause(err)
	case <-c.left:
		// Closing here could drop replies still in flight: say "done"
		// and leave the close to the relay.
		c.ctrlMu.Lock()
		c.ctrl.Close()
		c.ctrlMu.Unlock()
		t := time.NewTimer(goAwayLinger)
		select {
		case <-c.conn.Context().Done():
		case <-t.C:
			c.conn.Close(wire.CloseGoingAway, "")
		}
		t.Stop()
		<-accepted
		select {
		case <-c.goAway:
			return &GoAwayError{c.goAwayF}
		default:
			return ErrClosed
		}
	}
}

// Transport is the transport the session rides on.
func (c *Conn) Transport() transport.Kind { return c.conn.Kind() }

// GoingAway is closed when the relay sends GOAWAY; GoAway then says what
// it asked for.
func (c *Conn) GoingAway() <-chan struct{} { return c.goAway }

// GoAway returns the relay's GOAWAY, once GoingAway is closed.
func (c *Conn) GoAway() wire.GoAway {
	<-c.goAway
	return c.goAwayF
}

// Leave hangs up gracefully: Serve ends the control stream, answers what
// still arrives, and returns once the relay has closed. With
// Options.MoveFirst, call it after a GOAWAY once logged in elsewhere.
func (c *Conn) Leave() { c.leaveOnce.Do(func() { close(c.left) }) }

// RemoteAddr is the relay's address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// closeCause turns a connection error into the package's errors.
func (c *Conn) closeCause(err error) error {
	select {
	case <-c.goAway:
		return &GoAwayError{c.goAwayF}
	default:
	}
	if code, reason, ok := transport.PeerCloseCode(err); ok {
		switch code {
		case wire.CloseReplaced:
			return ErrReplaced
		case wire.CloseGoingAway:
			// Closed without a GoAway frame (the relay's drain timeout):
			// no delay was given, so this is an ordinary disconnect and
			// the caller's jittered backoff applies.
			return fmt.Errorf("device: relay closed the connection (%s)", reasonByName(reason))
		}
	}
	if transport.ClosedLocally(err) {
		return ErrClosed
	}
	return err
}

// handle reads one message, asks h and writes the reply.
func (c *Conn) handle(str transport.Stream, h Handler) {
	str.SetReadDeadline(time.Now().Add(messageReadTimeout))
	t, p, err := wire.ReadFrame(str, wire.MessageOverhead(c.welcome.Version)+int(c.welcome.MaxBody))
	if err == nil {
		err = wire.Expect(t, wire.FrameMessage)
	}
	var m wire.Message
	if err == nil {
		m, err = wire.ParseMessage(p, c.welcome.Version)
	}
	if err == nil {
		var one [1]byte
		if n, rerr := str.Read(one[:]); n > 0 || rerr != io.EOF {
			err = fmt.Errorf("%w: data after MESSAGE", wire.ErrMalformed)
		}
	}
	if err != nil {
		code := uint32(wire.StreamProtocol)
		if errors.Is(err, wire.ErrTooLarge) {
			code = wire.StreamTooLarge
		}
		str.Abort(code)
		return
	}
	ctx := c.conn.Context()
	if m.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.Timeout*9/10)
		defer cancel()
	}
	status, reply := safeHandle(ctx, h, m)
	str.SetWriteDeadline(time.Now().Add(messageReadTimeout))
	if _, err := str.Write(wire.Reply{Status: uint16(status), Body: reply}.Append(nil)); err != nil {
		str.Abort(wire.StreamCancelled)
		return
	}
	str.Close()
}

// safeHandle calls h and makes its answer one the relay will accept.
func safeHandle(ctx context.Context, h Handler, m wire.Message) (status int, reply []byte) {
	status, reply = h.HandleMessage(ctx, m)
	switch {
	case status < 200 || status > 599:
		return 500, errorJSON("handler returned an invalid status", "device_error")
	case len(reply) == 0:
		return status, []byte("{}")
	case len(reply) > wire.MaxReplyBody:
		return 500, errorJSON("reply over 64 KiB", "device_error")
	case !json.Valid(reply):
		return 500, errorJSON("reply is not JSON", "device_error")
	}
	return status, reply
}

func errorJSON(msg, code string) []byte {
	b, _ := json.Marshal(map[string]string{"error": msg, "code": code})
	return b
}
