package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/pebbletest"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go/http3"
)

// acmeRelay runs a relay on port with certificates from ca for
// pebbletest.Domain, its ACME state in dir.
func acmeRelay(t *testing.T, port int, ca *pebbletest.CA, dir string, renewBefore time.Duration, logs *relaytest.Buffer) (*relaytest.Relay, *certs.ACME) {
	t.Helper()
	cfg := certs.ACMEConfig{Domains: []string{pebbletest.Domain}, Dir: dir, RenewBefore: renewBefore,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if ca != nil {
		cfg.CA, cfg.HTTPClient = ca.Directory, ca.Client
	} else {
		cfg.CA = "https://127.0.0.1:1/dir" // nothing listens there
	}
	a, err := certs.NewACME(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := relaytest.StartDev(t, func(c *server.Config, _ *certs.Dev) {
		c.Listen = fmt.Sprintf("127.0.0.1:%d", port)
		c.TLS, c.UDPTLS, c.CertHashes = a.TLSConfig(), nil, nil
	})
	return e, a
}

// served returns the serial of the certificate a new TLS handshake gets.
func served(t *testing.T, addr string, roots *tls.Config) *big.Int {
	t.Helper()
	c, err := tls.Dial("tcp", addr, roots)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestACMEIssuanceAndRenewal: the relay gets a certificate from Pebble
// (TLS-ALPN-01 on its own TCP port), serves it on TCP and UDP alike (a
// device verifying Pebble's root logs in, HTTPS and HTTP/3 webhooks pass),
// and renews it for new handshakes while a device stays on its first
// session.
func TestACMEIssuanceAndRenewal(t *testing.T) {
	const validity, renewBefore = 30 * time.Second, 22 * time.Second // renewal ~8 s after issuance
	port := pebbletest.FreePort(t)
	ca := pebbletest.Start(t, pebbletest.Options{ChallengePort: port, Validity: validity})
	logs := &relaytest.Buffer{}
	dir := t.TempDir()
	e, a := acmeRelay(t, port, ca, dir, renewBefore, logs)
	if err := a.Obtain(); err != nil {
		t.Fatalf("obtain: %v", err)
	}
	trust := &tls.Config{RootCAs: ca.Roots, ServerName: pebbletest.Domain}

	tok := wire.NewToken()
	c, servedErr := e.DialWith(t, tok, echo("acme"), device.Options{TLS: trust})
	h3 := &http3.Transport{TLSClientConfig: trust}
	defer h3.Close()
	for name, client := range map[string]*http.Client{
		"HTTPS":  {Transport: &http.Transport{TLSClientConfig: trust}},
		"HTTP/3": {Transport: h3},
	} {
		resp, err := client.Post(e.URL("notify", tok), "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatalf("%s webhook over the ACME certificate: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].Issuer.CommonName == "" {
			t.Fatalf("%s webhook: %d", name, resp.StatusCode)
		}
	}
	files, err := a.Files()
	if err != nil || len(files) != 2 { // the account key and one (ECDSA) certificate
		t.Fatalf("ACME directory holds %v (%v); want the account key and the certificate", files, err)
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, fi.Mode().Perm(), err)
		}
	}

	first := served(t, e.Addr, trust)
	renewed := time.Now().Add(validity)
	for served(t, e.Addr, trust).Cmp(first) == 0 {
		if time.Now().After(renewed) {
			t.Fatal("the certificate was not renewed before it expired")
		}
		time.Sleep(100 * time.Millisecond) // polling a clock-driven renewal, bounded above
	}
	// The device is still on its first session, which still delivers.
	select {
	case err := <-servedErr:
		t.Fatalf("the device's session ended during the renewal: %v", err)
	default:
	}
	if c.Context().Err() != nil {
		t.Fatal("the device's connection closed during the renewal")
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: trust}}).Post(e.URL("notify", tok), "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatalf("webhook after the renewal: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook after the renewal: %d", resp.StatusCode)
	}
	// A new device gets the new certificate over QUIC too.
	d2, err := device.Dial(context.Background(), e.Addr, wire.NewToken(), device.Options{TLS: trust})
	if err != nil {
		t.Fatalf("a device after the renewal: %v", err)
	}
	d2.Close()
}

// TestACMEFailures: a CA that cannot be reached, or a challenge that
// fails, is a clear error (ErrACME, naming the CA), never a hang; and a
// relay with a certificate keeps serving it when it cannot renew.
func TestACMEFailures(t *testing.T) {
	t.Run("CA unreachable", func(t *testing.T) {
		_, a := acmeRelay(t, pebbletest.FreePort(t), nil, t.TempDir(), 0, &relaytest.Buffer{})
		err := a.Obtain()
		if !errors.Is(err, certs.ErrACME) || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("obtain from nowhere: %v", err)
		}
		t.Logf("%v", err)
	})
	t.Run("challenge fails", func(t *testing.T) {
		// Pebble validates on a port where nothing answers.
		ca := pebbletest.Start(t, pebbletest.Options{ChallengePort: pebbletest.FreePort(t)})
		_, a := acmeRelay(t, pebbletest.FreePort(t), ca, t.TempDir(), 0, &relaytest.Buffer{})
		err := a.Obtain()
		if !errors.Is(err, certs.ErrACME) {
			t.Fatalf("obtain with a failing challenge: %v", err)
		}
		t.Logf("%v", err)
	})
	t.Run("renewal impossible, old certificate kept", func(t *testing.T) {
		port := pebbletest.FreePort(t)
		ca := pebbletest.Start(t, pebbletest.Options{ChallengePort: port, Validity: time.Hour})
		dir := t.TempDir()
		first, a := acmeRelay(t, port, ca, dir, 0, &relaytest.Buffer{})
		if err := a.Obtain(); err != nil {
			t.Fatal(err)
		}
		trust := &tls.Config{RootCAs: ca.Roots, ServerName: pebbletest.Domain}
		serial := served(t, first.Addr, trust)
		first.Stop()

		// Back up with the CA gone and a renewal due at once.
		logs := &relaytest.Buffer{}
		e, a := acmeRelay(t, port, nil, dir, 2*time.Hour, logs)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go a.Run(ctx, time.Hour, 50*time.Millisecond)
		relaytest.WaitFor(t, func() bool { return strings.Contains(logs.String(), "ACME renewal overdue") })
		if got := served(t, e.Addr, trust); got.Cmp(serial) != 0 {
			t.Fatal("the relay does not serve the certificate it has")
		}
		d, err := device.Dial(context.Background(), e.Addr, wire.NewToken(), device.Options{TLS: trust})
		if err != nil {
			t.Fatalf("a device while renewal fails: %v", err)
		}
		d.Close()
	})
}

// TestACMESharedState: two relays behind one name share the ACME
// directory (deploy/compose.yaml runs them so). Only the first gets the
// CA's challenge connections; the second still obtains a certificate,
// because the challenge certificate it makes is in the shared directory,
// where the first finds it.
func TestACMESharedState(t *testing.T) {
	port := pebbletest.FreePort(t)
	ca := pebbletest.Start(t, pebbletest.Options{ChallengePort: port})
	dir := t.TempDir()
	acmeRelay(t, port, ca, dir, 0, &relaytest.Buffer{})                                // takes the challenges
	second, a := acmeRelay(t, pebbletest.FreePort(t), ca, dir, 0, &relaytest.Buffer{}) // orders
	if err := a.Obtain(); err != nil {
		t.Fatalf("the node that gets no challenge connections: %v", err)
	}
	trust := &tls.Config{RootCAs: ca.Roots, ServerName: pebbletest.Domain}
	served(t, second.Addr, trust)
}
