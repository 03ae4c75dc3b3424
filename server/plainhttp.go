package server

import (
	"errors"
	"io"
	"net"
	"strconv"
	"time"
)

// plainHTTPListener hands the TLS server connections that answer a client
// speaking plain HTTP to the HTTPS port with a plain-HTTP 400 naming
// https://, as net/http does, instead of closing without a byte (curl's
// "Empty reply from server"). Under the TLS listener, above the PROXY
// protocol one: it sees the bytes after a PROXY header.
type plainHTTPListener struct{ net.Listener }

func (l plainHTTPListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &plainHTTPConn{Conn: c}, nil
}

// plainHTTPConn looks at the first five bytes the TLS server reads, where
// a TLS record header is (crypto/tls reads it before anything else): if
// they start an HTTP request instead, it answers 400 and fails the read,
// so the handshake fails and the connection closes. It reads nothing
// itself and stops looking after five bytes; the handshake stays bounded
// by the read timeout the HTTP server sets.
type plainHTTPConn struct {
	net.Conn
	head [5]byte // the first bytes read; owned by Read (crypto/tls serializes reads)
	seen int     // bytes of head filled; len(head): done looking
}

// errPlainHTTP fails the handshake of a plain-HTTP client once answered.
var errPlainHTTP = errors.New("server: plain HTTP request on the HTTPS port")

func (c *plainHTTPConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.seen < len(c.head) {
		c.seen += copy(c.head[c.seen:], p[:n])
		if c.seen == len(c.head) && looksLikeHTTP(c.head) {
			c.answer()
			return 0, errPlainHTTP
		}
	}
	return n, err
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
