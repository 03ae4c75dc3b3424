package transport

import (
	"context"
	"net"
	"time"

	"github.com/quic-go/webtransport-go"
)

// WebTransport adapts a WebTransport session: the same protocol as raw QUIC,
// with WebTransport's session and stream error codes carrying ours.
func WebTransport(s *webtransport.Session) Conn { return wtConn{s} }

type wtConn struct{ s *webtransport.Session }

func (w wtConn) OpenStream(ctx context.Context) (Stream, error) {
	s, err := w.s.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return (*wtStream)(s), nil
}

func (w wtConn) AcceptStream(ctx context.Context) (Stream, error) {
	s, err := w.s.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return (*wtStream)(s), nil
}

func (w wtConn) Close(code uint32, reason string) error {
	return w.s.CloseWithError(webtransport.SessionErrorCode(code), reason)
}

func (w wtConn) Context() context.Context { return w.s.Context() }
func (w wtConn) RemoteAddr() net.Addr     { return w.s.RemoteAddr() }
func (w wtConn) Kind() Kind               { return KindWebTransport }

// wtStream is *webtransport.Stream under another name, as quicStream is.
type wtStream webtransport.Stream

func (s *wtStream) w() *webtransport.Stream            { return (*webtransport.Stream)(s) }
func (s *wtStream) Read(p []byte) (int, error)         { return s.w().Read(p) }
func (s *wtStream) Write(p []byte) (int, error)        { return s.w().Write(p) }
func (s *wtStream) Close() error                       { return s.w().Close() }
func (s *wtStream) SetDeadline(t time.Time) error      { return s.w().SetDeadline(t) }
func (s *wtStream) SetReadDeadline(t time.Time) error  { return s.w().SetReadDeadline(t) }
func (s *wtStream) SetWriteDeadline(t time.Time) error { return s.w().SetWriteDeadline(t) }

func (s *wtStream) Abort(code uint32) {
	s.w().CancelRead(webtransport.StreamErrorCode(code))
	s.w().CancelWrite(webtransport.StreamErrorCode(code))
}
