package webhook

import (
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// callerWatchAfter is how long a delivery runs before the caller's TCP
// connection is watched for a hang-up. Most devices answer well within it,
// so the common webhook pays a timer reset and no goroutine.
const callerWatchAfter = 20 * time.Millisecond

// watchCaller calls gone once the peer of conn, the caller of a webhook in
// delivery, has closed or reset its TCP connection; curl -m, a killed
// process and a client's own timeout all end so. The returned stop ends the
// watch and returns once the watch no longer touches conn, which fasthttp
// then reads again.
//
// A FIN from the caller counts as hanging up, as it does for nginx (499):
// HTTP/1.1 callers do not half-close and still wait for an answer. The
// socket is only inspected (TCP_INFO), never read: bytes the caller sent
// (a pipelined request, TLS close_notify) stay for fasthttp.
func watchCaller(conn net.Conn, gone func()) (stop func()) {
	tcp := underlyingTCP(conn)
	if tcp == nil {
		return func() {}
	}
	w := watchers.Get().(*callerWatch)
	w.mu.Lock()
	w.conn, w.tcp, w.gone = conn, tcp, gone
	w.mu.Unlock()
	w.timer.Reset(callerWatchAfter)
	return w.stop
}

// A callerWatch is reused across webhooks: its timer and its stop method
// value are made once, so a delivery that ends before the timer fires
// allocates nothing.
type callerWatch struct {
	timer  *time.Timer   // runs watch; static
	stop   func()        // w.end; static
	exited chan struct{} // watch sends once each time it runs; static

	mu      sync.Mutex   // guards the fields below; orders watch's start against end
	conn    net.Conn     // the caller's connection
	tcp     syscall.Conn // the TCP connection under it
	gone    func()
	stopped bool // end ran: watch must not start
	started bool // watch cleared the deadline and reads
}

var watchers sync.Pool

func init() {
	watchers.New = func() any {
		w := &callerWatch{exited: make(chan struct{}, 1)}
		w.timer = time.AfterFunc(time.Hour, w.watch)
		w.timer.Stop()
		w.stop = w.end
		return w
	}
}

func (w *callerWatch) watch() {
	defer func() { w.exited <- struct{}{} }()
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.started = true
	// The request's read deadline may pass before the device answers; the
	// watch runs until end wakes it with a deadline in the past.
	w.conn.SetReadDeadline(time.Time{})
	tcp, gone := w.tcp, w.gone
	w.mu.Unlock()
	raw, err := tcp.SyscallConn()
	if err != nil {
		return
	}

	hungUp := false
	// RawConn.Read calls the function at once, then after every readiness
	// edge (data, FIN, RST) until it returns true or a deadline passes.
	raw.Read(func(fd uintptr) bool {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return true // cannot tell; stop watching
		}
		hungUp = info.State != tcpEstablished
		return hungUp
	})
	if hungUp {
		gone()
	}
}

// end stops the watch, waits until it has let go of the connection and
// returns w to the pool.
func (w *callerWatch) end() {
	if !w.timer.Stop() {
		// watch runs, or is about to: stop it and wait for it.
		w.mu.Lock()
		w.stopped = true
		if w.started {
			w.conn.SetReadDeadline(aLongTimeAgo)
		}
		w.mu.Unlock()
		<-w.exited
		if w.started {
			w.conn.SetReadDeadline(time.Time{})
		}
	}
	w.mu.Lock()
	w.conn, w.tcp, w.gone = nil, nil, nil
	w.stopped, w.started = false, false
	w.mu.Unlock()
	watchers.Put(w)
}

// tcpEstablished is Linux's TCP_ESTABLISHED state in tcp_info: the peer has
// sent neither FIN (CLOSE_WAIT) nor RST (CLOSE).
const tcpEstablished = 1

var aLongTimeAgo = time.Unix(1, 0)

// underlyingTCP returns the TCP connection under conn (a *tls.Conn, a PROXY
// protocol connection, say), or nil.
func underlyingTCP(conn net.Conn) syscall.Conn {
	for conn != nil {
		switch c := conn.(type) {
		case *net.TCPConn:
			return c
		case interface{ NetConn() net.Conn }: // *tls.Conn
			conn = c.NetConn()
		case interface{ Raw() net.Conn }: // *proxyproto.Conn
			conn = c.Raw()
		default:
			return nil
		}
	}
	return nil
}
