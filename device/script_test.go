package device_test

// These tests put the device against a relay scripted by hand, on a
// simulated network in virtual time (package vnet), so that the relay can
// do what the real one never does and the device's own timeouts are exact.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/vnet"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
)

const latency = 10 * time.Millisecond

// scripted accepts one device connection on a simulated relay, reads its
// LOGIN, and hands the connection and control stream to script.
func scripted(t *testing.T, script func(c *quic.Conn, ctrl *quic.Stream)) *vnet.Net {
	t.Helper()
	net := vnet.New(t, 2, latency)
	tr := &quic.Transport{Conn: net.Relay}
	tlsConf := net.ServerTLS.Clone()
	tlsConf.NextProtos = []string{wire.ALPN}
	ln, err := tr.Listen(tlsConf, &quic.Config{MaxIdleTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		defer c.CloseWithError(0, "")
		ctrl, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		if typ, _, err := wire.ReadFrame(ctrl, wire.MaxControlPayload); err != nil || typ != wire.FrameLogin {
			t.Errorf("scripted relay: got %s %v, want LOGIN", typ, err)
			return
		}
		script(c, ctrl)
	}()
	t.Cleanup(func() {
		ln.Close()
		tr.Close()
		<-done
	})
	return net
}

func dialScripted(net *vnet.Net) (*device.Conn, error) {
	return device.Dial(context.Background(), vnet.RelayAddr.String(), wire.NewToken(),
		device.Options{TLS: net.ClientTLS, UDP: net.Endpoint()})
}

var welcome = wire.Welcome{Version: wire.Version, MaxBody: 1024, MaxInflight: 4, IdleTimeout: time.Minute}

// closedByDevice waits for c to end and returns the device's close code.
// Virtual time runs on while the device keeps alive, so the wait is
// bounded: a device that never closes fails the test instead of hanging it.
func closedByDevice(t *testing.T, c *quic.Conn) quic.ApplicationErrorCode {
	t.Helper()
	select {
	case <-c.Context().Done():
	case <-time.After(time.Minute):
		t.Error("the device did not close within a minute")
		return 0xff
	}
	var ae *quic.ApplicationError
	if err := context.Cause(c.Context()); !errors.As(err, &ae) || !ae.Remote {
		t.Fatalf("connection ended with %v, want a close from the device", err)
	}
	return ae.ErrorCode
}

// TestRelayEndingControlStreamIsAProtocolError: the relay ends its control
// stream only after REFUSE; a FIN on a live session's control stream is a
// protocol error, and the device closes with 0x1.
func TestRelayEndingControlStreamIsAProtocolError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		code := make(chan quic.ApplicationErrorCode, 1)
		net := scripted(t, func(c *quic.Conn, ctrl *quic.Stream) {
			ctrl.Write(welcome.Append(nil))
			ctrl.Close()
			code <- closedByDevice(t, c)
		})
		c, err := dialScripted(net)
		if err != nil {
			t.Fatal(err)
		}
		served := c.Serve(context.Background(), device.HandlerFunc(nil))
		if got := <-code; got != wire.CloseProtocol {
			t.Fatalf("device closed with 0x%x, want 0x%x", got, wire.CloseProtocol)
		}
		if served == nil {
			t.Fatal("Serve returned nil")
		}
	})
}

// TestWelcomeVersion: the device takes a WELCOME at a version it offered
// and no other: one above what it offered is a protocol error; one below
// its oldest (a relay too old for it) is a permanent refusal.
func TestWelcomeVersion(t *testing.T) {
	for _, tc := range []struct {
		version   uint8
		code      quic.ApplicationErrorCode
		permanent bool
	}{
		{wire.Version + 1, wire.CloseProtocol, false},
		{wire.MinVersion - 1, wire.CloseNormal, true},
	} {
		t.Run(fmt.Sprint("version ", tc.version), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				code := make(chan quic.ApplicationErrorCode, 1)
				net := scripted(t, func(c *quic.Conn, ctrl *quic.Stream) {
					w := welcome
					w.Version = tc.version
					ctrl.Write(w.Append(nil))
					code <- closedByDevice(t, c)
				})
				_, err := dialScripted(net)
				var re *device.RefusedError
				if err == nil || errors.As(err, &re) != tc.permanent || tc.permanent && !re.Permanent() {
					t.Fatalf("dial: %v; want permanent=%v", err, tc.permanent)
				}
				if got := <-code; got != tc.code {
					t.Fatalf("device closed with 0x%x, want 0x%x", got, tc.code)
				}
			})
		})
	}
}

// TestGoAwayLinger: after a GOAWAY the device ends its control stream and
// leaves the close to the relay; a relay that never closes is closed by
// the device with 0x4 exactly 10 s after its FIN.
func TestGoAwayLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const linger = 10 * time.Second
		code := make(chan quic.ApplicationErrorCode, 1)
		finAt := make(chan time.Time, 1)
		net := scripted(t, func(c *quic.Conn, ctrl *quic.Stream) {
			ctrl.Write(welcome.Append(nil))
			ctrl.Write(wire.GoAway{Reason: wire.ReasonDraining, ReconnectAfter: time.Second}.Append(nil))
			if _, _, err := wire.ReadFrame(ctrl, wire.MaxControlPayload); err != io.EOF {
				t.Errorf("after GOAWAY: %v, want the device's FIN", err)
			}
			finAt <- time.Now()
			code <- closedByDevice(t, c)
		})
		c, err := dialScripted(net)
		if err != nil {
			t.Fatal(err)
		}
		var ga *device.GoAwayError
		if err := c.Serve(context.Background(), device.HandlerFunc(nil)); !errors.As(err, &ga) || ga.ReconnectAfter != time.Second {
			t.Fatalf("Serve: %v, want the go-away", err)
		}
		if got := <-code; got != wire.CloseGoingAway {
			t.Fatalf("device closed with 0x%x, want 0x%x", got, wire.CloseGoingAway)
		}
		// The relay saw the FIN one latency after the device sent it, and
		// sees the close one latency after the device sends it.
		if d := time.Since(<-finAt); d != linger {
			t.Fatalf("device closed %v after its FIN, want %v", d, linger)
		}
	})
}

// TestUnexpectedFrameAtLogin: a relay that answers LOGIN with anything but
// WELCOME or REFUSE breaks the protocol; the device closes with 0x1.
func TestUnexpectedFrameAtLogin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		code := make(chan quic.ApplicationErrorCode, 1)
		net := scripted(t, func(c *quic.Conn, ctrl *quic.Stream) {
			ctrl.Write(wire.AppendRotated(nil))
			code <- closedByDevice(t, c)
		})
		if _, err := dialScripted(net); !errors.Is(err, wire.ErrUnexpected) {
			t.Fatalf("dial: %v, want an unexpected-frame error", err)
		}
		if got := <-code; got != wire.CloseProtocol {
			t.Fatalf("device closed with 0x%x, want 0x%x", got, wire.CloseProtocol)
		}
	})
}

// TestOversizedMessageIsResetTooLarge: a MESSAGE over WELCOME.max_body is
// reset with 0x3, "too large" (§7.4), a malformed one with 0x2.
func TestOversizedMessageIsResetTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		code quic.StreamErrorCode
	}{
		{"over max_body", wire.Message{Mode: "notify", Body: make([]byte, 2*welcome.MaxBody)}.Append(nil), wire.StreamTooLarge},
		{"empty mode", wire.Message{Mode: "", Body: []byte(`{}`)}.Append(nil), wire.StreamProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got := make(chan error, 1)
				net := scripted(t, func(c *quic.Conn, ctrl *quic.Stream) {
					ctrl.Write(welcome.Append(nil))
					s, err := c.OpenStream()
					if err != nil {
						got <- err
						return
					}
					s.Write(tc.msg)
					s.Close()
					_, err = io.ReadAll(s)
					got <- err
					ctrl.Write(wire.GoAway{Reason: wire.ReasonDraining}.Append(nil))
					wire.ReadFrame(ctrl, wire.MaxControlPayload) // the device's FIN
				})
				c, err := dialScripted(net)
				if err != nil {
					t.Fatal(err)
				}
				go c.Serve(context.Background(), device.HandlerFunc(func(context.Context, wire.Message) (int, []byte) {
					t.Error("the handler saw a message the device must refuse")
					return 200, nil
				}))
				var se *quic.StreamError
				if err := <-got; !errors.As(err, &se) || !se.Remote || se.ErrorCode != tc.code {
					t.Fatalf("the relay's read: %v, want a reset 0x%x from the device", err, tc.code)
				}
			})
		})
	}
}

// TestNoCommonALPNIsPermanent: a relay that speaks no ALPN the device
// offers fails the handshake with no_application_protocol, which the device
// treats like unsupported_version: permanent (§1, §8).
func TestNoCommonALPNIsPermanent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := vnet.New(t, 1, latency)
		tr := &quic.Transport{Conn: net.Relay}
		tlsConf := net.ServerTLS.Clone()
		tlsConf.NextProtos = []string{"awtrix-relay/9"}
		ln, err := tr.Listen(tlsConf, &quic.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { ln.Close(); tr.Close() }()
		_, err = dialScripted(net)
		var re *device.RefusedError
		if !errors.As(err, &re) || re.Reason != wire.ReasonVersion || !re.Permanent() {
			t.Fatalf("dial: %v, want a permanent version refusal", err)
		}
	})
}

// closeReason is the device's close reason text on c, once it has closed.
func closeReason(c *quic.Conn) string {
	var ae *quic.ApplicationError
	if !errors.As(context.Cause(c.Context()), &ae) {
		return ""
	}
	return ae.ErrorMessage
}

// TestRelayResettingControlStreamIsAProtocolError: the control stream is
// never reset (§7.4). A relay that resets it, instead of WELCOME or during a
// live session, or stops reading it (STOP_SENDING alone, which the device
// finds when it next writes there, here a ROTATE), breaks the protocol: the
// device closes with 0x1, reason text "control stream reset".
func TestRelayResettingControlStreamIsAProtocolError(t *testing.T) {
	reset := func(ctrl *quic.Stream) {
		ctrl.CancelRead(wire.StreamCancelled)
		ctrl.CancelWrite(wire.StreamCancelled)
	}
	for _, tc := range []struct {
		name string
		// relay runs after LOGIN; welcomed is closed once the device has
		// read WELCOME, if it has.
		relay func(ctrl *quic.Stream, welcomed <-chan struct{})
		// device uses the session until the reset ends it; nil: Dial fails.
		device func(c *device.Conn) error
	}{
		{"instead of WELCOME", func(ctrl *quic.Stream, _ <-chan struct{}) { reset(ctrl) }, nil},
		{"live session", func(ctrl *quic.Stream, welcomed <-chan struct{}) {
			ctrl.Write(welcome.Append(nil))
			<-welcomed // a reset could discard WELCOME still unsent
			reset(ctrl)
		}, func(c *device.Conn) error { return c.Serve(context.Background(), device.HandlerFunc(nil)) }},
		{"STOP_SENDING", func(ctrl *quic.Stream, _ <-chan struct{}) {
			// Before WELCOME: frames arrive in order, so the device has
			// the STOP_SENDING once it has WELCOME.
			ctrl.CancelRead(wire.StreamCancelled)
			ctrl.Write(welcome.Append(nil))
		}, func(c *device.Conn) error { return c.Rotate(context.Background(), wire.NewToken()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				type closed struct {
					code   quic.ApplicationErrorCode
					reason string
				}
				got := make(chan closed, 1)
				welcomed := make(chan struct{})
				net := scripted(t, func(c *quic.Conn, ctrl *quic.Stream) {
					tc.relay(ctrl, welcomed)
					code := closedByDevice(t, c)
					got <- closed{code, closeReason(c)}
				})
				c, err := dialScripted(net)
				close(welcomed)
				switch {
				case tc.device == nil && err == nil:
					t.Fatal("dial succeeded on a reset control stream")
				case tc.device != nil && err != nil:
					t.Fatal(err)
				case tc.device != nil:
					if err := tc.device(c); err == nil {
						t.Fatal("the device's session went on after the reset")
					}
				}
				if g := <-got; g.code != wire.CloseProtocol || g.reason != "control stream reset" {
					t.Fatalf("device closed with 0x%x %q, want 0x%x \"control stream reset\"", g.code, g.reason, wire.CloseProtocol)
				}
			})
		})
	}
}
