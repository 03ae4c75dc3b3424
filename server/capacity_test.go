package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"
)

func TestDeviceCap(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.Session.MaxDevices = 2 })
	a, b := wire.NewToken(), wire.NewToken()
	ca, _ := e.Dial(t, a, echo("a"))
	e.Dial(t, b, echo("b"))

	_, err := device.Dial(context.Background(), e.Addr, wire.NewToken(), device.Options{TLS: e.TLS})
	var re *device.RefusedError
	if !errors.As(err, &re) || re.Reason != wire.ReasonFull || re.Permanent() {
		t.Fatalf("third device: %v; want a temporary relay_full refusal", err)
	}
	// Devices already in are unaffected.
	for tok, name := range map[string]string{a: "a", b: "b"} {
		if s, body := e.Post(t, "notify", tok, `{}`); s != 200 || !strings.Contains(string(body), `"`+name+`"`) {
			t.Fatalf("device %s at the cap: %d %s", name, s, body)
		}
	}
	// A takeover replaces a session that already counts: allowed at the cap.
	e.Dial(t, b, echo("b2"))
	if s, body := e.Post(t, "notify", b, `{}`); s != 200 || !strings.Contains(string(body), `"b2"`) {
		t.Fatalf("takeover at the cap: %d %s", s, body)
	}
	// A device leaving frees its slot.
	ca.Close()
	relaytest.WaitFor(t, func() bool { return e.Router().Len() == 1 })
	e.Dial(t, wire.NewToken(), echo("c"))
}

// TestRetryUnderHandshakeSpike: past RetryAbove new connections per second,
// the relay demands address validation; real devices pass it and connect.
// (KnownSources off: every dial here comes from one address.)
func TestRetryUnderHandshakeSpike(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.RetryAbove = 1; c.KnownSources = 0 })
	for i := range 6 {
		opt := device.Options{Transport: transport.Kind(i % 2), Tokens: quic.NewLRUTokenStore(1, 1)}
		tok := wire.NewToken()
		e.DialWith(t, tok, echo("d"), opt)
		if s, _ := e.Post(t, "notify", tok, `{}`); s != 200 {
			t.Fatalf("device %d after Retry: %d", i, s)
		}
	}
	if got := metric(t, e, "relay_quic_retries_total"); got < 1 {
		t.Fatalf("relay_quic_retries_total = %v; the spike should have demanded Retries", got)
	}
}

// TestKnownSourceSkipsRetry: under a spike, a source that completed a
// handshake is never sent a Retry again, while a source new to the relay
// still is.
func TestKnownSourceSkipsRetry(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.RetryAbove = 1 })
	// The first connection takes the spike budget; from then on
	// 127.0.0.1 is known.
	for i := range 6 {
		tok := wire.NewToken()
		// A token store of its own: no NEW_TOKEN from a previous dial.
		e.DialWith(t, tok, echo("d"), device.Options{Transport: transport.Kind(i % 2), Tokens: quic.NewLRUTokenStore(1, 1)})
		if s, _ := e.Post(t, "notify", tok, `{}`); s != 200 {
			t.Fatalf("device %d: %d", i, s)
		}
	}
	if got := metric(t, e, "relay_quic_retries_total"); got != 0 {
		t.Fatalf("relay_quic_retries_total = %v for a known source; want 0", got)
	}
	if got := metric(t, e, "relay_quic_retries_skipped_total"); got < 1 {
		t.Fatalf("relay_quic_retries_skipped_total = %v; five dials within the spike should have skipped a Retry", got)
	}
	// New sources (127.0.0.2, .3, ...) right after: the budget is spent,
	// so they answer a Retry, and connect.
	for i := range 3 {
		ip := net.IPv4(127, 0, 0, byte(2+i))
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
		if err != nil {
			t.Skipf("SKIPPED LOUDLY: cannot bind %v for a new source: %v", ip, err)
		}
		tr := &quic.Transport{Conn: uc}
		t.Cleanup(func() { tr.Close() })
		tok := wire.NewToken()
		e.DialWith(t, tok, echo("n"), device.Options{UDP: tr})
		if s, _ := e.Post(t, "notify", tok, `{}`); s != 200 {
			t.Fatalf("device from %v: %d", ip, s)
		}
	}
	if got := metric(t, e, "relay_quic_retries_total"); got < 1 {
		t.Fatalf("relay_quic_retries_total = %v; new sources during the spike should have answered a Retry", got)
	}
}

// TestReturningDeviceSkipsRetry: a device keeps the address-validation
// token a relay gave it; back at the restarted relay during a spike, the
// token spares it the Retry when the relay kept its key, and does not when
// the relay has a new one.
func TestReturningDeviceSkipsRetry(t *testing.T) {
	kept := quic.TokenGeneratorKey{1, 2, 3}
	for _, tc := range []struct {
		name      string
		key       *quic.TokenGeneratorKey
		wantRetry bool
	}{{"kept key", &kept, false}, {"new key", nil, true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := relaytest.Start(t, func(c *server.Config) { c.RetryAbove, c.KnownSources, c.QUICTokenKey = 1, 0, tc.key })
			tokens := quic.NewLRUTokenStore(4, 4)
			c, _ := e.DialWith(t, wire.NewToken(), echo("d"), device.Options{Tokens: tokens})
			c.Close()
			e = e.Restart(t)
			// Another source spends the new process's spike budget.
			uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
			if err != nil {
				t.Skipf("SKIPPED LOUDLY: cannot bind 127.0.0.2 for a second source: %v", err)
			}
			tr := &quic.Transport{Conn: uc}
			t.Cleanup(func() { tr.Close() })
			e.DialWith(t, wire.NewToken(), echo("o"), device.Options{UDP: tr})

			tok := wire.NewToken()
			e.DialWith(t, tok, echo("d"), device.Options{Tokens: tokens})
			if s, _ := e.Post(t, "notify", tok, `{}`); s != 200 {
				t.Fatalf("returning device: %d", s)
			}
			got := metric(t, e, "relay_quic_retries_total")
			if tc.wantRetry && got < 1 || !tc.wantRetry && got != 0 {
				t.Fatalf("relay_quic_retries_total = %v; want a Retry: %v", got, tc.wantRetry)
			}
		})
	}
}

// TestDeviceResumesAtRestartedRelay: with ticket keys derived from a kept
// secret, a device coming back to the restarted relay resumes its TLS
// session; with a new secret it makes a full handshake.
func TestDeviceResumesAtRestartedRelay(t *testing.T) {
	secret := [certs.KeySize]byte{7}
	for _, tc := range []struct {
		name   string
		later  [certs.KeySize]byte
		resume float64
	}{{"kept secret", secret, 1}, {"new secret", [certs.KeySize]byte{8}, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			var conf *tls.Config
			e := relaytest.Start(t, func(c *server.Config) {
				conf = c.TLS
				certs.NewTicketKeys(secret).Install(conf)
			})
			sessions := tls.NewLRUClientSessionCache(4)
			c, _ := e.DialWith(t, wire.NewToken(), echo("d"), device.Options{Sessions: sessions})
			c.Close()
			if got := metric(t, e, "relay_quic_resumed_total"); got != 0 {
				t.Fatalf("a first connection resumed: %v", got)
			}
			e.Stop()
			// A new process: ticket keys from the secret it finds.
			certs.NewTicketKeys(tc.later).Install(conf)
			e = e.Restart(t)
			tok := wire.NewToken()
			e.DialWith(t, tok, echo("d"), device.Options{Sessions: sessions})
			if s, _ := e.Post(t, "notify", tok, `{}`); s != 200 {
				t.Fatalf("returning device: %d", s)
			}
			if got := metric(t, e, "relay_quic_resumed_total"); got != tc.resume {
				t.Fatalf("relay_quic_resumed_total = %v; want %v", got, tc.resume)
			}
		})
	}
}

// TestHandshakeLimitPerSource: one source over its handshake budget is
// refused; another source, and devices already connected, are not.
func TestHandshakeLimitPerSource(t *testing.T) {
	e := relaytest.Start(t, func(c *server.Config) { c.HandshakesPerSource = limit.Rate{PerSecond: 0.01, Burst: 2} })
	first := wire.NewToken()
	e.Dial(t, first, echo("a"))
	e.Dial(t, wire.NewToken(), echo("b"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := device.Dial(ctx, e.Addr, wire.NewToken(), device.Options{TLS: e.TLS}); err == nil {
		t.Fatal("a third handshake from the same source within its budget's refill passed")
	}
	if got := metric(t, e, "relay_quic_handshakes_refused_total"); got < 1 {
		t.Fatalf("relay_quic_handshakes_refused_total = %v", got)
	}
	if s, _ := e.Post(t, "notify", first, `{}`); s != 200 {
		t.Fatalf("connected device after the refusal: %d", s)
	}
	// Another source has its own budget.
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: cannot bind 127.0.0.2 for a second source: %v", err)
	}
	tr := &quic.Transport{Conn: uc}
	defer tr.Close()
	c, err := device.Dial(context.Background(), e.Addr, wire.NewToken(), device.Options{TLS: e.TLS, UDP: tr})
	if err != nil {
		t.Fatalf("a second source was refused: %v", err)
	}
	c.Close()
}
