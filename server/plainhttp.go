package server

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// plainHTTPListener hands the TLS server connections that answer a client
// speaking plain HTTP to the HTTPS port with a plain-HTTP 400 naming
// https://, as net/http does, instead of closing without a byte (curl's
// "Empty reply from server"); and, with mqtt set, that hand a client whose
// first byte is an MQTT CONNECT's (0x10; a TLS record starts 0x16) to the
// MQTT listener: a clock on a network that blocks 1883 can use the HTTPS
// port. Under the TLS listener, above the PROXY protocol one: it sees the
// bytes after a PROXY header.
type plainHTTPListener struct {
	net.Listener
	mqtt func(net.Conn) // takes a connection over, bytes read included; nil: no MQTT here
}

func (l plainHTTPListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &plainHTTPConn{Conn: c, mqtt: l.mqtt}, nil
}

// plainHTTPConn looks at the first five bytes the TLS server reads, where
// a TLS record header is (crypto/tls reads it before anything else): if
// they start an HTTP request instead, it answers 400 and fails the read,
// so the handshake fails and the connection closes. It reads nothing
// itself and stops looking after five bytes; the handshake stays bounded
// by the read timeout the HTTP server sets.
type plainHTTPConn struct {
	net.Conn
	mqtt func(net.Conn) // static; see plainHTTPListener
	head [5]byte        // the first bytes read; owned by Read (crypto/tls serializes reads)
	seen int            // bytes of head filled; len(head): done looking
	// handed is set once the MQTT listener owns the connection: the TLS
	// server's Close after its failed handshake must not close it.
	handed atomic.Bool
}

// errPlainHTTP fails the handshake of a plain-HTTP client once answered;
// errHandedOff one whose connection went to the MQTT listener.
var (
	errPlainHTTP = errors.New("server: plain HTTP request on the HTTPS port")
	errHandedOff = errors.New("server: MQTT on the HTTPS port, handed to the MQTT listener")
)

// mqttConnect is the first byte of an MQTT CONNECT (type 1, flags 0).
const mqttConnect = 0x10

func (c *plainHTTPConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.seen == 0 && n > 0 && p[0] == mqttConnect && c.mqtt != nil {
		c.handed.Store(true)
		c.mqtt(&replayConn{Conn: c.Conn, buf: bytes.Clone(p[:n])})
		return 0, errHandedOff
	}
	if c.seen < len(c.head) {
		c.seen += copy(c.head[c.seen:], p[:n])
		if c.seen == len(c.head) && looksLikeHTTP(c.head) {
			c.answer()
			return 0, errPlainHTTP
		}
	}
	return n, err
}

// Once the MQTT listener owns the connection, what the TLS and HTTP
// servers still do with it (close it after the failed handshake, set its
// deadlines, write) must not reach it.

func (c *plainHTTPConn) Close() error {
	if c.handed.Load() {
		return nil
	}
	return c.Conn.Close()
}

func (c *plainHTTPConn) Write(p []byte) (int, error) {
	if c.handed.Load() {
		return 0, errHandedOff
	}
	return c.Conn.Write(p)
}

func (c *plainHTTPConn) SetDeadline(t time.Time) error {
	if c.handed.Load() {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c *plainHTTPConn) SetReadDeadline(t time.Time) error {
	if c.handed.Load() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *plainHTTPConn) SetWriteDeadline(t time.Time) error {
	if c.handed.Load() {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// replayConn reads buf, the bytes read before the hand-off, then the
// connection.
type replayConn struct {
	net.Conn
	buf []byte // owned by Read
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn is the connection under c, for webhook's caller watch.
func (c *plainHTTPConn) NetConn() net.Conn { return c.Conn }

// answer writes the 400. The send buffer is empty (the server has sent
// nothing yet), so the write does not wait on the caller; the deadline is
// for the unlikely rest.
func (c *plainHTTPConn) answer() {
	// The port the caller dialled: a PROXY header's destination, else ours.
	port := "443"
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		port = strconv.Itoa(a.Port)
	}
	c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(c.Conn, "HTTP/1.0 400 Bad Request\r\n\r\n"+
		"Client sent an HTTP request to an HTTPS server.\n"+ // net/http's words
		"Use https:// on port "+port+": https://HOST:"+port+"/cloud?mode=MODE&token=TOKEN\n")
}

// looksLikeHTTP reports whether a TLS record header is the start of an
// HTTP/1.x request instead: net/http's tlsRecordHeaderLooksLikeHTTP, with
// the other methods a webhook caller may send.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE", "TRACE":
		return true
	}
	return false
}
