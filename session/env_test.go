package session_test

// The session layer's tests run real quic-go on a simulated network inside
// a testing/synctest bubble (package vnet): the clock is virtual, so every
// timeout is asserted to the nanosecond and none of them costs real time.
// Whole relays over real sockets are tested in package server.

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/vnet"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// latency is the simulated network's one-way delay: a handshake takes
// 2*latency on the device's side, 3*latency on the relay's.
const latency = 10 * time.Millisecond

// env is a session server behind a QUIC listener on a simulated network.
type env struct {
	t       *testing.T
	net     *vnet.Net
	router  *router.Router
	srv     *session.Server
	metrics *prometheus.Registry
	cfg     session.Config
}

// start runs a session server with the default configuration as mutate
// changes it. Call it inside synctest.Test.
func start(t *testing.T, mutate func(*session.Config)) *env {
	t.Helper()
	e := &env{t: t, net: vnet.New(t, 8, latency), router: router.New(), metrics: prometheus.NewRegistry(), cfg: session.DefaultConfig()}
	if mutate != nil {
		mutate(&e.cfg)
	}
	e.cfg.Metrics = e.metrics
	srv, err := session.New(e.router, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.net.Serve(&quic.Config{MaxIdleTimeout: e.cfg.IdleTimeout, MaxIncomingStreams: 32}, srv)
	return e
}

// rawDial opens a QUIC connection to the relay and does nothing else. It
// does not keep the connection alive and accepts the relay's idle timeout.
func (e *env) rawDial() *quic.Conn {
	e.t.Helper()
	c, err := e.net.RawDial(&quic.Config{MaxIncomingStreams: 100, MaxIdleTimeout: time.Hour})
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	return c
}

// login dials and logs in with token, and returns the connection and its
// control stream once WELCOME is in.
func (e *env) login(token string) (*quic.Conn, *quic.Stream) {
	e.t.Helper()
	c := e.rawDial()
	ctrl, err := c.OpenStream()
	if err != nil {
		e.t.Fatal(err)
	}
	ctrl.Write(wire.Login{Version: wire.Version, Token: []byte(token)}.Append(nil))
	if typ, _ := readFrame(e.t, ctrl); typ != wire.FrameWelcome {
		e.t.Fatalf("relay answered the login with %s", typ)
	}
	return c, ctrl
}

// dial logs a reference device in with token.
func (e *env) dial(token string, opt device.Options) (*device.Conn, error) {
	opt.TLS, opt.UDP = e.net.ClientTLS, e.net.Endpoint()
	return device.Dial(context.Background(), vnet.RelayAddr.String(), token, opt)
}

func readFrame(t *testing.T, s *quic.Stream) (wire.FrameType, []byte) {
	t.Helper()
	typ, p, err := wire.ReadFrame(s, wire.MaxControlPayload)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return typ, p
}

// closedWith waits for c's end and returns the application close code the
// relay sent; anything else fails the test.
func closedWith(t *testing.T, c *quic.Conn) quic.ApplicationErrorCode {
	t.Helper()
	<-c.Context().Done()
	var ae *quic.ApplicationError
	if err := context.Cause(c.Context()); !errors.As(err, &ae) || !ae.Remote {
		t.Fatalf("connection ended with %v, want a close from the relay", err)
	}
	return ae.ErrorCode
}

// acceptMessage accepts the next message stream on a raw device and reads
// the MESSAGE to its FIN.
func acceptMessage(t *testing.T, c *quic.Conn) *quic.Stream {
	t.Helper()
	s, err := c.AcceptStream(context.Background())
	if err != nil {
		t.Fatalf("accept message stream: %v", err)
	}
	if _, err := io.ReadAll(s); err != nil {
		t.Fatalf("read message: %v", err)
	}
	return s
}

// wantReset checks that the relay stopped reading s (STOP_SENDING) with
// 0x1: its send side's context ends with that as the cause.
func wantReset(t *testing.T, s *quic.Stream) {
	t.Helper()
	<-s.Context().Done()
	var se *quic.StreamError
	if err := context.Cause(s.Context()); !errors.As(err, &se) || !se.Remote || se.ErrorCode != wire.StreamCancelled {
		t.Fatalf("message stream ended with %v, want a reset 0x1 from the relay", err)
	}
}

// counter reads one counter, NAME or NAME{label="value"}, from the session
// server's registry; 0 if it has none.
func counter(e *env, series string) uint64 { return uint64(value(e, series)) }

// value reads one counter or gauge as counter does.
func value(e *env, series string) float64 {
	name, labels, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	families, err := e.metrics.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if strings.Join(got, ",") == labels {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
