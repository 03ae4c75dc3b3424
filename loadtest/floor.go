package loadtest

// This file is the floors: bare servers that do the device leg of the
// relay's work and nothing else, so that relay minus floor is what the
// relay's own machinery costs (routing, limits, metrics, cluster hooks,
// drain, a goroutine per session), apart from what quic-go,
// webtransport-go, fasthttp and TLS cost anyway.
//
// A floor serves the loadtest's webhooks (POST /cloud?mode=M&token=T over
// HTTPS on TCP, fasthttp, the baseline's settings) and one kind of device:
// on the same port over UDP, raw QUIC devices (ALPN awtrix-relay/1) or
// WebTransport devices (HTTP/3 CONNECT /connect), or on the TCP port
// WebSocket devices (GET /connect, fasthttp/websocket, the streams
// multiplexed as PROTOCOL §2.5 says, by package transport). A device logs in as with the relay
// (LOGIN, WELCOME at the negotiated version) and is kept in a plain map,
// token to connection; each webhook opens a stream to it, writes the
// MESSAGE, reads the REPLY and its FIN, and answers with the REPLY's status
// and body. No rate limit, no in-flight cap, no metrics, no cluster; no
// goroutine per session either: after WELCOME nothing reads the control
// stream, and the map forgets a connection when it ends (context.AfterFunc).
//
// Like the baseline, a floor runs as a hidden subcommand of the loadtest
// binary, in a process of its own, so that its CPU and memory are sampled
// apart: `loadtest --serve-floor quic --listen ADDR --cert FILE --key FILE`.

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
	"github.com/valyala/fasthttp"
)

// FloorFlag is the hidden subcommand's flag: `loadtest --serve-floor KIND
// --listen HOST:PORT --cert FILE --key FILE`, KIND one of FloorKinds.
const FloorFlag = "--serve-floor"

// Floor kinds: the device transport a floor serves.
const (
	FloorQUIC         = TransportQUIC
	FloorWebTransport = TransportWebTransport
	FloorWebSocket    = TransportWebSocket
)

// FloorKinds lists the floors.
var FloorKinds = []string{FloorQUIC, FloorWebTransport, FloorWebSocket}

// floorName is a floor's name in reports: "floor-quic".
func floorName(kind string) string { return "floor-" + kind }

// floorReady starts the one line a floor process prints on stdout once it
// accepts connections: "floor listening HOST:PORT".
const floorReady = "floor listening "

// The floor's session parameters are the relay's defaults, so that devices
// see the same session: the same WELCOME, the same wait for a REPLY, and
// the transport parameters of PROTOCOL §2.2 (quic-go allocates buffers as
// data arrives, but the windows decide how much may arrive at once).
const (
	floorAckTimeout   = defaultAckTimeout
	floorLoginTimeout = 10 * time.Second
	floorMaxBody      = 64 << 10
	floorMaxInflight  = 32 // announced; the floor does not enforce it
	floorIdleTimeout  = 60 * time.Second
	floorHandshake    = 5 * time.Second
	// floorListenTries bounds the search for a port free on TCP and UDP.
	floorListenTries = 20
)

// floorQUICConfig is the relay's QUIC configuration (server.quicConfig);
// only WebTransport needs datagrams and partial-delivery resets.
func floorQUICConfig(kind string) *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:             floorHandshake,
		MaxIdleTimeout:                   floorIdleTimeout,
		MaxIncomingStreams:               32,
		MaxIncomingUniStreams:            8,
		InitialStreamReceiveWindow:       16 << 10,
		MaxStreamReceiveWindow:           uint64(max(wire.MaxReplyBody, floorMaxBody) + 1024),
		InitialConnectionReceiveWindow:   32 << 10,
		MaxConnectionReceiveWindow:       1 << 20,
		EnableDatagrams:                  kind == FloorWebTransport,
		EnableStreamResetPartialDelivery: kind == FloorWebTransport,
	}
}

// floor is one floor server's state.
type floor struct {
	kind       string                     // static
	wsUpgrader websocket.FastHTTPUpgrader // static; WebSocket floors

	mu   sync.Mutex // guards devs
	devs map[string]*floorSession
}

// floorSession is a logged-in device.
type floorSession struct {
	conn    transport.Conn // static
	version uint8          // static: the negotiated minor version
}

// ServeFloor listens on addr, TCP and UDP on the same port (port 0 for any
// free one), and serves webhooks and kind's devices (one of FloorKinds)
// until ctx ends. It returns the address.
func ServeFloor(ctx context.Context, kind, addr string, cert tls.Certificate) (net.Addr, error) {
	a, _, err := serveFloor(ctx, kind, addr, cert)
	return a, err
}

// serveFloor is ServeFloor; done closes when the floor has shut down.
func serveFloor(ctx context.Context, kind, addr string, cert tls.Certificate) (net.Addr, <-chan struct{}, error) {
	if !slices.Contains(FloorKinds, kind) {
		return nil, nil, fmt.Errorf("loadtest: floor %q: want one of %v", kind, FloorKinds)
	}
	tcp, udp, err := listenPair(addr)
	if err != nil {
		return nil, nil, err
	}
	f := &floor{kind: kind, devs: map[string]*floorSession{}}
	stopUDP := func() { f.closeAll(); udp.Close() }
	if kind == FloorWebSocket {
		// The relay's upgrader settings (server.New).
		f.wsUpgrader = websocket.FastHTTPUpgrader{
			ReadBufferSize:  2 << 10,
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     func(*fasthttp.RequestCtx) bool { return true },
		}
	} else if stopUDP, err = f.serveUDP(udp, cert); err != nil {
		tcp.Close()
		udp.Close()
		return nil, nil, err
	}
	srv := &fasthttp.Server{
		Handler:                      f.serveTCP,
		ReadBufferSize:               8 << 10,
		ReadTimeout:                  10 * time.Second,
		WriteTimeout:                 10 * time.Second,
		IdleTimeout:                  60 * time.Second,
		MaxRequestBodySize:           floorMaxBody + 1<<10,
		NoDefaultServerHeader:        true,
		DisablePreParseMultipartForm: true,
		Logger:                       quietLogger{},
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(tls.NewListener(tcp, conf)) // returns once Shutdown closes tcp
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		if kind == FloorWebSocket {
			// Its sessions hold TCP connections that Shutdown would wait for.
			f.closeAll()
		}
		sctx, cancel := context.WithTimeout(context.Background(), baselineDrain)
		defer cancel()
		if srv.ShutdownWithContext(sctx) != nil {
			tcp.Close()
		}
		<-served
		stopUDP()
	}()
	return tcp.Addr(), done, nil
}

// listenPair binds TCP and UDP on the same port, as the relay does: with
// port 0 it takes the kernel's TCP choice and retries if that UDP port is
// taken.
func listenPair(addr string) (net.Listener, *net.UDPConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("loadtest: floor address %q: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = floorListenTries
	}
	for i := 0; ; i++ {
		tcp, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("loadtest: floor: listen tcp: %w", err)
		}
		ua, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)))
		if err != nil {
			tcp.Close()
			return nil, nil, fmt.Errorf("loadtest: floor: %w", err)
		}
		udp, err := net.ListenUDP("udp", ua)
		if err == nil {
			return tcp, udp, nil
		}
		tcp.Close()
		if i+1 >= tries {
			return nil, nil, fmt.Errorf("loadtest: floor: listen udp: %w", err)
		}
	}
}

// serveUDP accepts f.kind's devices on udp until the returned stop, which
// closes every connection and the socket and waits for the accept loop.
func (f *floor) serveUDP(udp *net.UDPConn, cert tls.Certificate) (stop func(), err error) {
	tr := &quic.Transport{Conn: udp}
	conf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, NextProtos: []string{wire.ALPN}}
	var wt *webtransport.Server
	if f.kind == FloorWebTransport {
		conf.NextProtos = []string{http3.NextProtoH3}
		mux := http.NewServeMux()
		wt = &webtransport.Server{H3: &http3.Server{Handler: mux}}
		mux.HandleFunc("/connect", func(w http.ResponseWriter, r *http.Request) {
			sess, err := wt.Upgrade(w, r)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			f.login(transport.WebTransport(sess))
		})
	}
	ln, err := tr.Listen(conf, floorQUICConfig(f.kind))
	if err != nil {
		return nil, fmt.Errorf("loadtest: floor: quic listen: %w", err)
	}
	var conns sync.WaitGroup // logins and WebTransport connections
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return // the listener closed
			}
			if wt != nil {
				conns.Go(func() { wt.ServeQUICConn(c) })
			} else {
				conns.Go(func() { f.login(transport.QUIC(c)) })
			}
		}
	}()
	return func() {
		ln.Close()
		<-accepted
		if wt != nil {
			wt.Close()
		}
		f.closeAll()
		// Ends the logins still waiting for a LOGIN too.
		tr.Close()
		conns.Wait()
		udp.Close()
	}, nil
}

// login reads c's LOGIN, binds its token and answers WELCOME at the
// negotiated version. Anything else closes the connection.
func (f *floor) login(c transport.Conn) {
	ctx, cancel := context.WithTimeout(c.Context(), floorLoginTimeout)
	defer cancel()
	ctrl, err := c.AcceptStream(ctx)
	if err != nil {
		c.Close(wire.CloseLoginTimeout, "no login in time")
		return
	}
	ctrl.SetReadDeadline(time.Now().Add(floorLoginTimeout))
	t, p, err := wire.ReadFrame(ctrl, wire.MaxControlPayload)
	if err == nil {
		err = wire.Expect(t, wire.FrameLogin)
	}
	var l wire.Login
	if err == nil {
		l, err = wire.ParseLogin(p)
	}
	v, ok := wire.Negotiate(l.Version)
	if err != nil || !ok {
		c.Close(wire.CloseProtocol, "floor: bad login")
		return
	}
	ctrl.SetReadDeadline(time.Time{})
	tok := string(l.Token)
	s := &floorSession{conn: c, version: v}
	// Bind before WELCOME, as the relay does (PROTOCOL §6.1); the newest
	// login with a token wins.
	f.mu.Lock()
	old := f.devs[tok]
	f.devs[tok] = s
	f.mu.Unlock()
	if old != nil {
		old.conn.Close(wire.CloseReplaced, wire.ReasonReplaced.String())
	}
	context.AfterFunc(c.Context(), func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.devs[tok] == s {
			delete(f.devs, tok)
		}
	})
	w := wire.Welcome{Version: v, MaxBody: floorMaxBody, MaxInflight: floorMaxInflight, IdleTimeout: floorIdleTimeout}
	ctrl.SetWriteDeadline(time.Now().Add(floorLoginTimeout))
	if _, err := ctrl.Write(w.Append(nil)); err != nil {
		c.Close(wire.CloseProtocol, "floor: welcome not sent")
		return
	}
	ctrl.SetWriteDeadline(time.Time{})
}

// closeAll closes every device's connection.
func (f *floor) closeAll() {
	f.mu.Lock()
	ss := make([]*floorSession, 0, len(f.devs))
	for _, s := range f.devs {
		ss = append(ss, s)
	}
	f.mu.Unlock()
	for _, s := range ss {
		s.conn.Close(wire.CloseNormal, "")
	}
}

// serveTCP is the fasthttp handler: WebSocket devices at /connect on a
// WebSocket floor, webhooks otherwise.
func (f *floor) serveTCP(ctx *fasthttp.RequestCtx) {
	if f.kind == FloorWebSocket && string(ctx.Path()) == "/connect" {
		f.connectWebSocket(ctx)
		return
	}
	f.webhook(ctx)
}

// connectWebSocket takes a WebSocket device with the relay's session
// settings (server.connectWebSocket), less the origin check.
func (f *floor) connectWebSocket(ctx *fasthttp.RequestCtx) {
	err := f.wsUpgrader.Upgrade(ctx, func(c *websocket.Conn) {
		w := transport.WebSocket(c, nil, transport.WSOptions{
			MaxIncomingStreams: 32,
			MaxStreamBuffer:    max(wire.MaxReplyBody, floorMaxBody) + 1024,
			IdleTimeout:        floorIdleTimeout,
		})
		f.login(w)
		<-w.Done() // fasthttp reuses the connection once this returns
	})
	if err != nil {
		floorError(ctx, fasthttp.StatusBadRequest, "bad_request")
	}
}

// webhook is the fasthttp handler: POST /cloud?mode=M&token=T, the body
// delivered to T's device and its REPLY returned. Other parameters are
// ignored.
func (f *floor) webhook(ctx *fasthttp.RequestCtx) {
	switch {
	case string(ctx.Path()) != "/cloud":
		floorError(ctx, fasthttp.StatusNotFound, "not_found")
		return
	case !ctx.IsPost():
		floorError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed")
		return
	}
	args := ctx.QueryArgs()
	mode, tok := args.Peek("mode"), args.Peek("token")
	if len(mode) == 0 || len(mode) > wire.MaxModeLen {
		floorError(ctx, fasthttp.StatusBadRequest, "bad_mode")
		return
	}
	f.mu.Lock()
	s := f.devs[string(tok)]
	f.mu.Unlock()
	if s == nil {
		floorError(ctx, fasthttp.StatusNotFound, "no_device")
		return
	}
	status, body, err := s.deliver(string(mode), ctx.PostBody())
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		floorError(ctx, fasthttp.StatusGatewayTimeout, "timeout")
	case err != nil:
		floorError(ctx, fasthttp.StatusBadGateway, "bad_reply")
	default:
		ctx.SetStatusCode(status)
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}
}

// deliver sends one MESSAGE on a new stream and reads the REPLY and the
// stream's end, all within the relay's ack timeout.
func (s *floorSession) deliver(mode string, body []byte) (int, []byte, error) {
	deadline := time.Now().Add(floorAckTimeout)
	ctx, cancel := context.WithDeadline(s.conn.Context(), deadline)
	defer cancel()
	st, err := s.conn.OpenStream(ctx)
	if err != nil {
		return 0, nil, err
	}
	st.SetDeadline(deadline)
	m := wire.Message{Mode: mode, Timeout: floorAckTimeout, Body: body}
	if _, err := st.Write(m.AppendAt(make([]byte, 0, 64+len(body)), s.version)); err != nil {
		st.Abort(wire.StreamCancelled)
		return 0, nil, err
	}
	st.Close()
	t, p, err := wire.ReadFrame(st, 2+wire.MaxReplyBody)
	if err == nil {
		err = wire.Expect(t, wire.FrameReply)
	}
	var r wire.Reply
	if err == nil {
		r, err = wire.ParseReply(p)
	}
	if err == nil {
		// The stream ends right after the REPLY (PROTOCOL §6.3); reading
		// that end also lets quic-go retire the stream.
		var one [1]byte
		if n, rerr := st.Read(one[:]); n > 0 || rerr != io.EOF {
			err = fmt.Errorf("floor: no end of stream after REPLY: %v", rerr)
		}
	}
	if err != nil {
		st.Abort(wire.StreamCancelled)
		return 0, nil, err
	}
	return int(r.Status), r.Body, nil
}

func floorError(ctx *fasthttp.RequestCtx, status int, code string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"error":"` + code + `","code":"` + code + `"}`)
}

// FloorArgs are the arguments that make the loadtest binary serve a floor
// of kind on addr with the given certificate.
func FloorArgs(kind, addr, certFile, keyFile string) []string {
	return []string{FloorFlag, kind, "--listen", addr, "--cert", certFile, "--key", keyFile}
}

// FloorMain runs a floor as a process: args are FloorArgs (the command
// line after the program name). Like BaselineMain, it prints "floor
// listening HOST:PORT" on stdout once it serves, serves until SIGTERM,
// SIGINT or end of stdin, and returns 0, 1 on failure, 2 on bad usage.
func FloorMain(args []string) int {
	return floorMain(args, os.Stdin, os.Stdout, os.Stderr)
}

func floorMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest "+FloorFlag, flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String(FloorFlag[2:], "", "the devices' transport: quic, webtransport or websocket")
	addr := fs.String("listen", "", "listen on `HOST:PORT`, TCP and UDP")
	certFile := fs.String("cert", "", "TLS certificate `FILE` (PEM)")
	keyFile := fs.String("key", "", "TLS private key `FILE` (PEM)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !slices.Contains(FloorKinds, *kind) || *addr == "" || *certFile == "" || *keyFile == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: loadtest %s quic|webtransport|websocket --listen HOST:PORT --cert FILE --key FILE\n", FloorFlag)
		return 2
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: floor: %v\n", err)
		return 1
	}
	return runServer(stdin, stdout, stderr, floorReady, func(ctx context.Context) (fmt.Stringer, <-chan struct{}, error) {
		return serveFloor(ctx, *kind, *addr, cert)
	})
}

// StartFloor starts cmd, a command built with FloorArgs (normally the
// loadtest binary itself), and waits until it prints its address or ctx
// ends. started, if set, gets the process's PID as soon as it runs.
func StartFloor(ctx context.Context, cmd *exec.Cmd, started func(pid int) error) (*ServerProcess, error) {
	return startServer(ctx, cmd, "floor", floorReady, started)
}
