package transport_test

// The adapters' contract, checked the same way for raw QUIC and for
// WebTransport: codes travel both ways and come back out of errors, a
// deadline ends a blocked read, and OpenStream waits for the peer's stream
// credit until its context ends. Real quic-go and webtransport-go on a
// simulated network, in virtual time (package vnet).

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/internal/vnet"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, relaytest.LeakOptions...) }

// peerStreams is what either side lets the other open at once.
const peerStreams = 4

// pair returns the two ends of one connection: a (the dialler, a device)
// and b (the listener, the relay).
type pair func(t *testing.T) (a, b transport.Conn)

var kinds = []struct {
	name string
	pair pair
}{{"quic", quicPair}, {"webtransport", wtPair}}

func quicPair(t *testing.T) (transport.Conn, transport.Conn) {
	net := vnet.New(t, 1, 5*time.Millisecond)
	tlsConf := net.ServerTLS.Clone()
	tlsConf.NextProtos = []string{wire.ALPN}
	conf := &quic.Config{MaxIncomingStreams: peerStreams, MaxIdleTimeout: time.Hour}
	tr := &quic.Transport{Conn: net.Relay}
	ln, err := tr.Listen(tlsConf, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); tr.Close() })
	ctlsConf := net.ClientTLS.Clone()
	ctlsConf.NextProtos = []string{wire.ALPN}
	a, err := net.Endpoint().Dial(context.Background(), vnet.RelayAddr, ctlsConf, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.CloseWithError(0, "") })
	b, err := ln.Accept(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return transport.QUIC(a), transport.QUIC(b)
}

func wtPair(t *testing.T) (transport.Conn, transport.Conn) {
	net := vnet.New(t, 1, 5*time.Millisecond)
	conf := &quic.Config{MaxIncomingStreams: peerStreams, MaxIdleTimeout: time.Hour,
		EnableDatagrams: true, EnableStreamResetPartialDelivery: true}
	sconf := conf.Clone()
	sconf.MaxIncomingStreams++ // the client's CONNECT stream
	tlsConf := net.ServerTLS.Clone()
	tlsConf.NextProtos = []string{http3.NextProtoH3}
	tr := &quic.Transport{Conn: net.Relay}
	ln, err := tr.Listen(tlsConf, sconf)
	if err != nil {
		t.Fatal(err)
	}
	sessions := make(chan *webtransport.Session, 1)
	srv := &webtransport.Server{H3: &http3.Server{}}
	srv.H3.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := srv.Upgrade(w, r)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		sessions <- s
	})
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept(context.Background())
		if err == nil {
			srv.ServeQUICConn(c)
		}
	}()
	t.Cleanup(func() { srv.Close(); ln.Close(); tr.Close(); <-served })

	ep := net.Endpoint()
	d := &webtransport.Transport{
		TLSClientConfig: net.ClientTLS,
		QUICConfig:      conf,
		DialAddr: func(ctx context.Context, _ string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			return ep.Dial(ctx, vnet.RelayAddr, tc, qc)
		},
	}
	t.Cleanup(func() { d.Close() })
	rsp, a, err := d.Dial(context.Background(), "https://localhost/connect", nil)
	if err != nil || rsp.StatusCode != http.StatusOK {
		t.Fatalf("webtransport dial: %v %v", rsp, err)
	}
	return transport.WebTransport(a), transport.WebTransport(<-sessions)
}

// forEach runs test for each transport inside a bubble of its own.
func forEach(t *testing.T, test func(t *testing.T, a, b transport.Conn)) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := k.pair(t)
				test(t, a, b)
			})
		})
	}
}

// open opens a stream on from, writes msg and accepts the stream on to.
func open(t *testing.T, from, to transport.Conn, msg string) (transport.Stream, transport.Stream) {
	t.Helper()
	s, err := from.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	r, err := to.AcceptStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func TestStreamRoundTrip(t *testing.T) {
	forEach(t, func(t *testing.T, a, b transport.Conn) {
		s, r := open(t, b, a, "MESSAGE")
		s.Close()
		if got, err := io.ReadAll(r); err != nil || string(got) != "MESSAGE" {
			t.Fatalf("read %q, %v", got, err)
		}
		r.Write([]byte("REPLY"))
		r.Close()
		if got, err := io.ReadAll(s); err != nil || string(got) != "REPLY" {
			t.Fatalf("read %q, %v", got, err)
		}
	})
}

// TestAbortResetsBothWays: Abort's code reaches the peer on both halves,
// and ResetByPeer tells it from the connection's end.
func TestAbortResetsBothWays(t *testing.T) {
	forEach(t, func(t *testing.T, a, b transport.Conn) {
		s, r := open(t, b, a, "x")
		r.Read(make([]byte, 1))
		s.Abort(wire.StreamCancelled)
		_, err := io.ReadAll(r)
		if !transport.ResetByPeer(err) {
			t.Fatalf("read after the peer's Abort: %v, want a reset by the peer", err)
		}
		var qe *quic.StreamError
		var we *webtransport.StreamError
		if !(errors.As(err, &qe) && qe.ErrorCode == wire.StreamCancelled) && !(errors.As(err, &we) && we.ErrorCode == wire.StreamCancelled) {
			t.Fatalf("reset %v, want code 0x%x", err, wire.StreamCancelled)
		}
		// The write half: the peer learns it may stop (STOP_SENDING).
		var werr error
		for werr == nil {
			_, werr = r.Write(make([]byte, 1024))
			time.Sleep(time.Millisecond)
		}
		if !transport.ResetByPeer(werr) {
			t.Fatalf("write after the peer's Abort: %v, want a reset by the peer", werr)
		}
	})
}

// TestCloseCodes: the code and reason of Close come out of the peer's
// errors (PeerCloseCode), and the closing side knows it closed.
func TestCloseCodes(t *testing.T) {
	forEach(t, func(t *testing.T, a, b transport.Conn) {
		b.Close(wire.CloseReplaced, "replaced")
		_, err := a.AcceptStream(context.Background())
		code, reason, ok := transport.PeerCloseCode(err)
		if !ok || code != wire.CloseReplaced || reason != "replaced" {
			t.Fatalf("peer sees %v: code 0x%x %q %v; want 0x%x replaced", err, code, reason, ok, wire.CloseReplaced)
		}
		if transport.ClosedLocally(err) {
			t.Fatal("the peer thinks it closed")
		}
		_, err = b.AcceptStream(context.Background())
		if !transport.ClosedLocally(err) {
			t.Fatalf("closing side: %v, want closed locally", err)
		}
		if _, _, ok := transport.PeerCloseCode(err); ok {
			t.Fatal("the closing side sees a peer's code")
		}
		<-a.Context().Done()
	})
}

// TestDeadlines: a read deadline ends a blocked read with
// os.ErrDeadlineExceeded, exactly on time.
func TestDeadlines(t *testing.T) {
	forEach(t, func(t *testing.T, a, b transport.Conn) {
		_, r := open(t, b, a, "x")
		r.Read(make([]byte, 1))
		r.SetReadDeadline(time.Now().Add(3 * time.Second))
		began := time.Now()
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v, want a deadline error", err)
		}
		if d := time.Since(began); d != 3*time.Second {
			t.Fatalf("read returned after %v", d)
		}
	})
}

// TestOpenStreamWaitsForCredit: with every stream the peer allows open,
// OpenStream waits, and gives up when its context ends.
func TestOpenStreamWaitsForCredit(t *testing.T) {
	forEach(t, func(t *testing.T, a, b transport.Conn) {
		for range peerStreams {
			open(t, b, a, "x")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := b.OpenStream(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("OpenStream over the peer's limit: %v, want the context's end", err)
		}
	})
}
