// Package transport adapts the connections device sessions ride on, raw
// QUIC, WebTransport and WebSocket, to one stream-multiplexing interface, Conn, and
// reads the codes their errors carry. Both sides of the protocol use it:
// the relay's session server (package session) and devices (package
// device). It knows nothing of the router or the relay.
package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/webtransport-go"
)

// Stream is one bidirectional stream of a device connection.
type Stream interface {
	io.Reader
	io.Writer
	// Close ends the write side (FIN); reading may go on.
	Close() error
	// Abort resets both directions with a wire.Stream* code.
	Abort(code uint32)
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// Conn is a device connection that carries many streams.
type Conn interface {
	// OpenStream opens a bidirectional stream, waiting for the peer's
	// stream limit until ctx ends.
	OpenStream(ctx context.Context) (Stream, error)
	AcceptStream(ctx context.Context) (Stream, error)
	// Close closes the connection with a wire.Close* code and a reason
	// the peer can read.
	Close(code uint32, reason string) error
	// Context ends when the connection is closed.
	Context() context.Context
	RemoteAddr() net.Addr
	// Kind is the transport the connection rides on.
	Kind() Kind
}

// QUIC adapts a quic-go connection.
func QUIC(c *quic.Conn) Conn { return quicConn{c} }

type quicConn struct{ c *quic.Conn }

func (q quicConn) OpenStream(ctx context.Context) (Stream, error) {
	s, err := q.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return (*quicStream)(s), nil
}

func (q quicConn) AcceptStream(ctx context.Context) (Stream, error) {
	s, err := q.c.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return (*quicStream)(s), nil
}

func (q quicConn) Close(code uint32, reason string) error {
	return q.c.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

func (q quicConn) Context() context.Context { return q.c.Context() }
func (q quicConn) RemoteAddr() net.Addr     { return q.c.RemoteAddr() }
func (q quicConn) Kind() Kind               { return KindQUIC }

// quicStream gives *quic.Stream the Stream methods without an allocation
// per stream: it is the same struct under another name.
type quicStream quic.Stream

func (s *quicStream) q() *quic.Stream                   { return (*quic.Stream)(s) }
func (s *quicStream) Read(p []byte) (int, error)        { return s.q().Read(p) }
func (s *quicStream) Write(p []byte) (int, error)       { return s.q().Write(p) }
func (s *quicStream) Close() error                      { return s.q().Close() }
func (s *quicStream) SetDeadline(t time.Time) error     { return s.q().SetDeadline(t) }
func (s *quicStream) SetReadDeadline(t time.Time) error { return s.q().SetReadDeadline(t) }
func (s *quicStream) SetWriteDeadline(t time.Time) error {
	return s.q().SetWriteDeadline(t)
}

func (s *quicStream) Abort(code uint32) {
	s.q().CancelRead(quic.StreamErrorCode(code))
	s.q().CancelWrite(quic.StreamErrorCode(code))
}

// PeerCloseCode returns the application close code the peer sent, if err
// reports a connection that the peer closed.
func PeerCloseCode(err error) (code uint32, reason string, ok bool) {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return uint32(ae.ErrorCode), ae.ErrorMessage, true
	}
	var se *webtransport.SessionError
	if errors.As(err, &se) && se.Remote {
		return uint32(se.ErrorCode), se.Message, true
	}
	var we *WSCloseError
	if errors.As(err, &we) && we.Remote {
		return we.Code, we.Reason, true
	}
	return 0, "", false
}

// ClosedLocally reports whether err says this side closed the connection.
func ClosedLocally(err error) bool {
	var ae *quic.ApplicationError
	var se *webtransport.SessionError
	var we *WSCloseError
	return errors.As(err, &ae) && !ae.Remote || errors.As(err, &se) && !se.Remote || errors.As(err, &we) && !we.Remote
}

// ResetByPeer reports whether err is the peer resetting one stream, as
// opposed to the connection ending.
func ResetByPeer(err error) bool {
	var qe *quic.StreamError
	var we *webtransport.StreamError
	var se *WSStreamError
	return errors.As(err, &qe) && qe.Remote || errors.As(err, &we) && we.Remote || errors.As(err, &se) && se.Remote
}
