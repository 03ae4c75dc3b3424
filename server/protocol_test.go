package server_test

// These tests speak the device protocol by hand over quic-go, so that they
// can send what the device package never would: truncated, oversized,
// unexpected and malformed frames.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/webhook"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
)

// protoWait bounds every wait in these tests. It is far above anything the
// relay should take, so that it only ever ends a test that is failing.
const protoWait = 10 * time.Second

// rawDial opens a QUIC connection to the relay and does nothing else.
func rawDial(t *testing.T, e *relaytest.Relay) *quic.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), protoWait)
	defer cancel()
	tlsConf := e.TLS.Clone()
	tlsConf.NextProtos = []string{wire.ALPN}
	c, err := quic.DialAddr(ctx, e.Addr, tlsConf, &quic.Config{MaxIncomingStreams: 100})
	if err != nil {
		t.Fatalf("quic dial: %v", err)
	}
	t.Cleanup(func() { c.CloseWithError(wire.CloseNormal, "test over") })
	return c
}

// openCtrl opens the control stream and writes b on it.
func openCtrl(t *testing.T, c *quic.Conn, b []byte) *quic.Stream {
	t.Helper()
	s, err := c.OpenStream()
	if err != nil {
		t.Fatalf("open control stream: %v", err)
	}
	if _, err := s.Write(b); err != nil {
		t.Fatalf("write control stream: %v", err)
	}
	return s
}

// readFrame reads one frame, bounded by protoWait.
func readFrame(t *testing.T, s *quic.Stream, limit int) (wire.FrameType, []byte) {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(protoWait))
	defer s.SetReadDeadline(time.Time{})
	typ, p, err := wire.ReadFrame(s, limit)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return typ, p
}

// login dials and logs in with token, and returns the connection and its
// control stream once the relay has welcomed the device (and so has
// registered it).
func login(t *testing.T, e *relaytest.Relay, token string) (*quic.Conn, *quic.Stream) {
	t.Helper()
	return loginAt(t, e, token, wire.Version)
}

// loginAt logs in offering minor version v, which the relay must speak.
func loginAt(t *testing.T, e *relaytest.Relay, token string, v uint8) (*quic.Conn, *quic.Stream) {
	t.Helper()
	c := rawDial(t, e)
	ctrl := openCtrl(t, c, wire.Login{Version: v, Token: []byte(token), Agent: "proto-test"}.Append(nil))
	typ, p := readFrame(t, ctrl, wire.MaxControlPayload)
	if typ != wire.FrameWelcome {
		t.Fatalf("relay answered the login with %s, want WELCOME", typ)
	}
	if w, err := wire.ParseWelcome(p); err != nil || w.Version != v {
		t.Fatalf("welcome %+v: %v", w, err)
	}
	return c, ctrl
}

// closeCode waits for the connection to end and returns the application
// close code the relay sent. Anything else (a local close, an idle timeout,
// no close within protoWait) fails the test.
func closeCode(t *testing.T, c *quic.Conn) quic.ApplicationErrorCode {
	t.Helper()
	timer := time.NewTimer(protoWait)
	defer timer.Stop()
	select {
	case <-c.Context().Done():
	case <-timer.C:
		t.Fatalf("relay did not close the connection within %v", protoWait)
	}
	var ae *quic.ApplicationError
	if err := context.Cause(c.Context()); !errors.As(err, &ae) || !ae.Remote {
		t.Fatalf("connection ended with %v; want an application close from the relay", err)
	}
	// Every later call on the connection reports the same close.
	var again *quic.ApplicationError
	if _, err := c.AcceptStream(context.Background()); !errors.As(err, &again) || *again != *ae {
		t.Fatalf("AcceptStream after the close: %v; want %v", err, ae)
	}
	return ae.ErrorCode
}

func expectClose(t *testing.T, c *quic.Conn, want quic.ApplicationErrorCode) {
	t.Helper()
	if got := closeCode(t, c); got != want {
		t.Fatalf("relay closed with code 0x%x (%s), want 0x%x",
			got, context.Cause(c.Context()), want)
	}
}

// answer serves one message stream on c in the background: it reads what
// the relay sent up to the FIN, then writes reply and a FIN.
type answered struct {
	msg []byte
	err error
}

func answer(c *quic.Conn, reply []byte) <-chan answered {
	ch := make(chan answered, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), protoWait)
		defer cancel()
		s, err := c.AcceptStream(ctx)
		if err != nil {
			ch <- answered{err: err}
			return
		}
		s.SetDeadline(time.Now().Add(protoWait))
		msg, err := io.ReadAll(s)
		if err == nil {
			_, err = s.Write(reply)
		}
		if err == nil {
			err = s.Close()
		}
		ch <- answered{msg, err}
	}()
	return ch
}

// withLength rewrites a frame's header to announce its real payload size.
func withLength(frame []byte) []byte {
	binary.BigEndian.PutUint32(frame[1:wire.HeaderLen], uint32(len(frame)-wire.HeaderLen))
	return frame
}

func TestProtoBadFirstFrame(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok := []byte(wire.NewToken())
	cases := []struct {
		name  string
		frame []byte
	}{
		{"garbage header", bytes.Repeat([]byte{0xff}, wire.HeaderLen)},
		{"login with trailing bytes", withLength(append(wire.Login{Version: wire.Version, Token: tok}.Append(nil), 0))},
		{"rotate first", wire.Rotate{Token: tok}.Append(nil)},
		{"reply first", wire.Reply{Status: 200, Body: []byte(`{}`)}.Append(nil)},
		{"oversized login", wire.AppendHeader(nil, wire.FrameLogin, wire.MaxControlPayload+1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, e)
			openCtrl(t, c, tc.frame)
			expectClose(t, c, wire.CloseProtocol)
		})
	}
	t.Run("login cut short by FIN", func(t *testing.T) {
		c := rawDial(t, e)
		lg := wire.Login{Version: wire.Version, Token: tok}.Append(nil)
		s := openCtrl(t, c, lg[:len(lg)-3])
		s.Close()
		expectClose(t, c, wire.CloseProtocol)
	})
	if n := e.Router().Len(); n != 0 {
		t.Fatalf("router holds %d sessions after failed logins", n)
	}
}

// TestProtoVersionNegotiation: the relay answers a device's LOGIN with the
// highest minor version both speak. An old device gets its version 1; a
// current one 2; a newer one (version 3, whose LOGIN carries a field
// version 2 does not know) and the newest get 2; version 0, older than any
// relay, is refused for good.
func TestProtoVersionNegotiation(t *testing.T) {
	e := relaytest.Start(t, nil)
	for _, tc := range []struct {
		name  string
		login []byte
		want  uint8
	}{
		{"old device, version 1", wire.Login{Version: 1, Token: []byte(wire.NewToken())}.Append(nil), 1},
		{"current device, version 2", wire.Login{Version: 2, Token: []byte(wire.NewToken())}.Append(nil), 2},
		{"newer device, version 3 with an extension field", withLength(append(wire.Login{Version: 3, Token: []byte(wire.NewToken()), Agent: "v3"}.Append(nil), 0x03, 'x', 'y', 'z')), 2},
		{"newest device, version 255", wire.Login{Version: 255, Token: []byte(wire.NewToken())}.Append(nil), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, e)
			ctrl := openCtrl(t, c, tc.login)
			typ, p := readFrame(t, ctrl, wire.MaxControlPayload)
			if typ != wire.FrameWelcome {
				t.Fatalf("relay answered with %s, want WELCOME", typ)
			}
			if w, err := wire.ParseWelcome(p); err != nil || w.Version != tc.want {
				t.Fatalf("welcome %+v (%v); want version %d", w, err, tc.want)
			}
		})
	}
	for v := uint8(1); v <= wire.Version; v++ {
		t.Run(fmt.Sprintf("version %d with a field it does not define", v), func(t *testing.T) {
			c := rawDial(t, e)
			openCtrl(t, c, withLength(append(wire.Login{Version: v, Token: []byte(wire.NewToken())}.Append(nil), 0x03, 'x', 'y', 'z')))
			expectClose(t, c, wire.CloseProtocol)
		})
	}
	t.Run("version 0", func(t *testing.T) {
		c := rawDial(t, e)
		ctrl := openCtrl(t, c, wire.Login{Version: 0, Token: []byte(wire.NewToken())}.Append(nil))
		typ, p := readFrame(t, ctrl, wire.MaxControlPayload)
		if typ != wire.FrameRefuse {
			t.Fatalf("relay answered a version 0 login with %s, want REFUSE", typ)
		}
		if r, err := wire.ParseRefuse(p); err != nil || r.Reason != wire.ReasonVersion {
			t.Fatalf("refuse %+v (%v); want reason %s", r, err, wire.ReasonVersion)
		}
		// The relay ends the control stream after the refusal, then the connection.
		ctrl.SetReadDeadline(time.Now().Add(protoWait))
		if _, _, err := wire.ReadFrame(ctrl, wire.MaxControlPayload); err != io.EOF {
			t.Fatalf("after REFUSE: %v; want the end of the stream", err)
		}
		expectClose(t, c, wire.CloseRefused)
	})
}

func TestProtoBadControlFrameAfterLogin(t *testing.T) {
	e := relaytest.Start(t, nil)
	cases := []struct {
		name  string
		frame []byte
	}{
		{"unknown type", wire.AppendHeader(nil, 0x7f, 0)},
		{"oversized", append(wire.AppendHeader(nil, wire.FrameRotate, 2000), make([]byte, 2000)...)},
		{"second login", wire.Login{Version: wire.Version, Token: []byte(wire.NewToken())}.Append(nil)},
		{"rotate with trailing bytes", withLength(append(wire.Rotate{Token: []byte(wire.NewToken())}.Append(nil), 0))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := wire.NewToken()
			c, ctrl := login(t, e, tok)
			if _, err := ctrl.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			expectClose(t, c, wire.CloseProtocol)
			relaytest.WaitFor(t, func() bool { return e.Router().Lookup(router.KeyOf([]byte(tok))) == nil })
		})
	}
}

func TestProtoMalformedReplyClosesDevice(t *testing.T) {
	e := relaytest.Start(t, nil)
	valid := wire.Reply{Status: 200, Body: []byte(`{"ok":true}`)}.Append(nil)
	cases := []struct {
		name  string
		reply []byte
	}{
		{"status 99", wire.Reply{Status: 99, Body: []byte(`{}`)}.Append(nil)},
		{"status 600", wire.Reply{Status: 600, Body: []byte(`{}`)}.Append(nil)},
		{"message frame", wire.Message{Mode: "notify", Body: []byte(`{}`)}.Append(nil)},
		{"random bytes", []byte("\xde\xad\xbe\xef\x00 this is no frame")},
		{"no reply", nil},
		{"truncated reply", valid[:len(valid)-2]},
		{"data after reply", append(valid[:len(valid):len(valid)], 0)},
		{"oversized reply", append(wire.AppendHeader(nil, wire.FrameReply, 2+wire.MaxReplyBody+1), 0, 200)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := wire.NewToken()
			c, _ := login(t, e, tok)
			done := answer(c, tc.reply)
			status, body := e.Post(t, "notify", tok, `{"text":"hi"}`)
			if a := <-done; a.err != nil {
				t.Fatalf("device side: %v", a.err)
			}
			if status != 502 || relaytest.ErrorCode(t, body) != "bad_reply" {
				t.Fatalf("webhook got %d %s; want 502 bad_reply", status, body)
			}
			expectClose(t, c, wire.CloseProtocol)
			relaytest.WaitFor(t, func() bool { return e.Router().Lookup(router.KeyOf([]byte(tok))) == nil })
			if status, body := e.Post(t, "notify", tok, `{}`); status != 404 || relaytest.ErrorCode(t, body) != "no_device" {
				t.Fatalf("after the close: %d %s; want 404 no_device", status, body)
			}
		})
	}
}

func TestProtoNonJSONReplyKeepsDevice(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok := wire.NewToken()
	c, _ := login(t, e, tok)

	done := answer(c, wire.Reply{Status: 200, Body: []byte("shown, thanks")}.Append(nil))
	status, body := e.Post(t, "notify", tok, `{}`)
	if a := <-done; a.err != nil {
		t.Fatalf("device side: %v", a.err)
	}
	if status != 502 || relaytest.ErrorCode(t, body) != "bad_reply" {
		t.Fatalf("non-JSON reply: %d %s; want 502 bad_reply", status, body)
	}
	if err := c.Context().Err(); err != nil {
		t.Fatalf("connection closed after a well-framed reply: %v", context.Cause(c.Context()))
	}

	done = answer(c, wire.Reply{Status: 201, Body: []byte(`{"second":true}`)}.Append(nil))
	status, body = e.Post(t, "notify", tok, `{}`)
	if a := <-done; a.err != nil {
		t.Fatalf("device side, second message: %v", a.err)
	}
	if status != 201 || string(body) != `{"second":true}` {
		t.Fatalf("second webhook: %d %s; want the device's 201", status, body)
	}
}

// TestProtoExtraDeviceStreamsAreIgnored: the UDP port's one QUIC
// configuration must let HTTP/3 callers and WebTransport pages open streams,
// so a raw QUIC device can open some too. The relay never reads them: they
// get no answer and do not disturb the session. The limit is exactly 32
// bidirectional streams per QUIC connection, the control stream among them
// (and a WebTransport session's CONNECT stream): the others keep their
// credit for the life of the connection, ended, reset or neither, and the
// relay grants no more (§2.2).
func TestProtoExtraDeviceStreamsAreIgnored(t *testing.T) {
	e := relaytest.Start(t, nil)
	for _, tc := range []struct {
		name  string
		dial  func(*testing.T, *relaytest.Relay) rawSession
		extra int // streams the device may open beside its control stream
	}{
		{"quic", dialRawQUIC, 31},
		{"webtransport", dialRawWebTransport, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := wire.NewToken()
			s := tc.dial(t, e).(*rawQUICSession)
			rawLogin(t, s, tok)
			var first quicLikeStream
			for i := range tc.extra {
				str, err := s.open()
				if err != nil {
					t.Fatalf("stream %d beside the control stream: %v", i+1, err)
				}
				str.Write(wire.Rotate{Token: []byte(wire.NewToken())}.Append(nil))
				switch i % 3 {
				case 0:
					first = str
				case 1:
					str.Close()
				case 2:
					str.CancelRead(quic.StreamErrorCode(wire.StreamCancelled))
					str.CancelWrite(quic.StreamErrorCode(wire.StreamCancelled))
				}
			}
			var limit *quic.StreamLimitReachedError
			if _, err := s.open(); !errors.As(err, &limit) {
				t.Fatalf("stream %d beside the control stream: %v, want the stream limit", tc.extra+1, err)
			}
			first.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := first.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("extra stream answered: %d bytes, %v; want silence", n, err)
			}

			// The session itself is unharmed.
			done := s.answer(wire.Reply{Status: 200, Body: []byte(`{}`)}.Append(nil))
			status, body := e.Post(t, "notify", tok, `{}`)
			if err := <-done; err != nil || status != 200 {
				t.Fatalf("webhook after the extra streams: %d %s (device: %v)", status, body, err)
			}
			// The relay has read all the device sent before the reply, the
			// ends and resets included, and still grants no stream.
			if _, err := s.open(); !errors.As(err, &limit) {
				t.Fatalf("a stream after the webhook: %v, want the stream limit still", err)
			}
		})
	}
}

// TestProtoMessageFrameIsExact: the MESSAGE a device gets is, byte for
// byte, what §4.7 says for its version: at version 1 mode and body; at
// version 2 also the query (empty here) and the time the relay waits for
// the REPLY, which the default 5 s ack timeout bounds.
func TestProtoMessageFrameIsExact(t *testing.T) {
	e := relaytest.Start(t, nil)
	const mode, body = "customapp", `{"text":"Hallo \u00e9","icon":"1234","duration":10}`
	for v := uint8(1); v <= wire.Version; v++ {
		t.Run(fmt.Sprintf("version %d", v), func(t *testing.T) {
			tok := wire.NewToken()
			c, _ := loginAt(t, e, tok, v)
			done := answer(c, wire.Reply{Status: 200, Body: []byte(`{"ok":1}`)}.Append(nil))
			status, reply := e.Post(t, mode, tok, body)
			a := <-done
			if a.err != nil {
				t.Fatalf("device side: %v", a.err) // io.ReadAll: the stream did not end in a FIN
			}
			if status != 200 || string(reply) != `{"ok":1}` {
				t.Fatalf("webhook: %d %s", status, reply)
			}
			var want []byte
			switch v {
			case 1:
				want = []byte{byte(wire.FrameMessage), 0, 0, 0, byte(1 + len(mode) + len(body)), byte(len(mode))}
				want = append(append(want, mode...), body...)
			case 2:
				want = []byte{byte(wire.FrameMessage), 0, 0, 0, byte(1 + len(mode) + 1 + 4 + len(body)), byte(len(mode))}
				want = append(append(want, mode...), 0)
				if len(a.msg) < len(want)+4 {
					t.Fatalf("message stream held %q", a.msg)
				}
				timeout := binary.BigEndian.Uint32(a.msg[len(want):])
				if timeout == 0 || timeout > uint32(webhook.DefaultAckTimeout/time.Millisecond) {
					t.Fatalf("timeout %d ms, want (0, %v]", timeout, webhook.DefaultAckTimeout)
				}
				want = append(binary.BigEndian.AppendUint32(want, timeout), body...)
				// The reference encoder agrees with the hand-built frame.
				if enc := (wire.Message{Mode: mode, Timeout: time.Duration(timeout) * time.Millisecond, Body: []byte(body)}).Append(nil); !bytes.Equal(enc, want) {
					t.Fatalf("wire.Message.Append gives %q", enc)
				}
			}
			if !bytes.Equal(a.msg, want) {
				t.Fatalf("message stream held\n%q\nwant\n%q", a.msg, want)
			}
			if enc := (wire.Message{Mode: mode, Body: []byte(body)}).AppendAt(nil, 1); v == 1 && !bytes.Equal(enc, want) {
				t.Fatalf("wire.Message.AppendAt(1) gives %q", enc)
			}
		})
	}
}

// TestProtoEmptyControlStreamIsAProtocolError: a control stream that a
// device opens and ends at once, without a byte, breaks the protocol like
// any other LOGIN cut short (§6.1): close 0x1, counted.
func TestProtoEmptyControlStreamIsAProtocolError(t *testing.T) {
	e := relaytest.Start(t, nil)
	before := metric(t, e, "relay_protocol_errors_total")
	c := rawDial(t, e)
	s, err := c.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	expectClose(t, c, wire.CloseProtocol)
	if n := metric(t, e, "relay_protocol_errors_total"); n != before+1 {
		t.Fatalf("relay_protocol_errors_total went from %v to %v, want one more", before, n)
	}
}
