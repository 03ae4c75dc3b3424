package certs_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/certs/trust"
	"github.com/pixelrelay/relay/internal/pebbletest"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/internal/setting"
	"go.uber.org/goleak"
)

// The Provider's upkeep (ACME, the file watch) must end with Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, relaytest.LeakOptions...)
}

// serve accepts TLS connections on 127.0.0.1 with the configuration conf
// returns, until the end of the test, and returns the address. conf is
// called at each handshake, so that the listener can be bound before the
// configuration exists (ACME's challenge may come as soon as Open starts).
func serve(t *testing.T, conf func() *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, conf)
}

func serveOn(t *testing.T, ln net.Listener, conf func() *tls.Config) string {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return conf(), nil }})
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			tc.Handshake()
			tc.Close()
		}
	}()
	return ln.Addr().String()
}

// servedLeaf is the certificate a new handshake with addr gets, verified
// with client.
func servedLeaf(t *testing.T, addr string, client *tls.Config) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", addr, client)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func logger(b *relaytest.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// TestOpenDev: without files or ACME, Open creates the development CA in
// Dir and logs its path and fingerprint; TCP gets the server certificate
// and UDP the short-lived one whose hash CertHashes returns, both from the
// CA that ca.pem holds; a second Open reuses the CA; Reload has nothing to
// do.
func TestOpenDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	logs := &relaytest.Buffer{}
	p, err := certs.Open(certs.Config{Dir: dir, Logger: logger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Dev == nil || !p.Dev.Created || p.Dev.CAFile != filepath.Join(dir, "ca.pem") {
		t.Fatalf("Dev = %+v, want the CA created in %s", p.Dev, dir)
	}
	for _, want := range []string{"ca=" + p.Dev.CAFile, "sha256=" + p.Dev.CAFingerprint, "created=true"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the start's log line does not say %s:\n%s", want, logs)
		}
	}
	if p.HTTPHandler != nil || p.UDPTLS == nil || p.CertHashes == nil {
		t.Fatalf("HTTPHandler %v, UDPTLS %v, CertHashes %v: want no handler, a UDP configuration and its hashes", p.HTTPHandler, p.UDPTLS, p.CertHashes != nil)
	}
	pool, err := trust.CAPool(p.Dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	client := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	tcp := servedLeaf(t, serve(t, func() *tls.Config { return p.TLS }), client)
	udp := servedLeaf(t, serve(t, func() *tls.Config { return p.UDPTLS }), client)
	if life := tcp.NotAfter.Sub(tcp.NotBefore); life < 300*24*time.Hour {
		t.Errorf("TCP certificate lives %v, want the year-long server.pem one", life)
	}
	if life := udp.NotAfter.Sub(udp.NotBefore); life > 14*24*time.Hour {
		t.Errorf("UDP certificate lives %v: browsers refuse more than 14 days", life)
	}
	if h := p.CertHashes(); len(h) != 1 || h[0] != sha256.Sum256(udp.Raw) {
		t.Errorf("CertHashes = %x, want the UDP certificate's %x", h, sha256.Sum256(udp.Raw))
	}
	if err := p.Reload(); !errors.Is(err, certs.ErrNothingToReload) {
		t.Errorf("Reload: %v, want ErrNothingToReload", err)
	}
	p.Close()

	again, err := certs.Open(certs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Dev.Created || again.Dev.CAFingerprint != p.Dev.CAFingerprint {
		t.Errorf("second Open: Created %v, fingerprint %s then %s; want the CA reused", again.Dev.Created, p.Dev.CAFingerprint, again.Dev.CAFingerprint)
	}
}

// pairOf writes the server pair of a new development CA into dir as
// name.pem and name-key.pem, as an ACME client does (beside, then renamed
// over), and returns the CA's PEM and the certificate's serial.
func pairOf(t *testing.T, dir, name string) (caPEM []byte, serial string) {
	t.Helper()
	src := t.TempDir()
	dev := mustDev(t, src)
	for from, to := range map[string]string{"server-key.pem": name + "-key.pem", "server.pem": name + ".pem"} {
		data := mustRead(t, filepath.Join(src, from))
		tmp := filepath.Join(dir, to+".new")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	return mustRead(t, dev.CAFile), leaf(t, dev).SerialNumber.String()
}

// TestOpenFiles: the operator's files serve; Reload, and with Watch a
// change on disk, swap them for new handshakes; a pair that does not load
// is refused and the one in use stays; Close ends the watch.
func TestOpenFiles(t *testing.T) {
	for _, watch := range []bool{false, true} {
		t.Run(map[bool]string{false: "Reload", true: "Watch"}[watch], func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "cert-key.pem")
			caA, serialA := pairOf(t, dir, "cert")
			logs := &relaytest.Buffer{}
			p, err := certs.Open(certs.Config{CertFile: certFile, KeyFile: keyFile, Watch: watch, Logger: logger(logs)})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Dev != nil || p.UDPTLS != nil || p.CertHashes != nil || p.HTTPHandler != nil {
				t.Fatal("files serve TCP and UDP alike, with nothing else")
			}
			if !strings.Contains(logs.String(), "cert="+certFile) {
				t.Errorf("the start's log line does not name the file:\n%s", logs)
			}
			addr := serve(t, func() *tls.Config { return p.TLS })
			pool := x509.NewCertPool() // trusts both pairs: a handshake may get either
			pool.AppendCertsFromPEM(caA)
			client := &tls.Config{RootCAs: pool, ServerName: "localhost"}
			if got := servedLeaf(t, addr, client).SerialNumber.String(); got != serialA {
				t.Fatalf("served %s, want the file's %s", got, serialA)
			}

			caB, serialB := pairOf(t, dir, "cert")
			pool.AppendCertsFromPEM(caB)
			if watch {
				relaytest.WaitFor(t, func() bool { return servedLeaf(t, addr, client).SerialNumber.String() == serialB })
			} else {
				if err := p.Reload(); err != nil {
					t.Fatalf("Reload: %v", err)
				}
				if got := servedLeaf(t, addr, client).SerialNumber.String(); got != serialB {
					t.Fatalf("after Reload: served %s, want the new file's %s", got, serialB)
				}
			}

			if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if watch {
				relaytest.WaitFor(t, func() bool { return strings.Contains(logs.String(), "certificate reload refused") })
			} else if err := p.Reload(); !errors.Is(err, certs.ErrBadPair) {
				t.Fatalf("Reload of a broken pair: %v, want ErrBadPair", err)
			}
			if got := servedLeaf(t, addr, client).SerialNumber.String(); got != serialB {
				t.Fatalf("a broken pair replaced the working one: served %s", got)
			}
		})
	}
}

// TestConfigCheck: each setting that cannot work is a *setting.Error
// naming it, from Check and from Open alike, and neither creates a file.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	pairOf(t, dir, "good")
	good, goodKey := filepath.Join(dir, "good.pem"), filepath.Join(dir, "good-key.pem")
	badCA := filepath.Join(dir, "bad-ca")
	if err := os.Mkdir(badCA, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, badCA, "ca.pem", []byte("nonsense"))
	state := filepath.Join(dir, "state") // never created
	acme := certs.ACMEConfig{Domains: []string{"relay.example"}}
	for _, c := range []struct {
		name    string
		cfg     certs.Config
		setting string
		is      error
	}{
		{"cert without key", certs.Config{CertFile: good}, "key", nil},
		{"key without cert", certs.Config{KeyFile: goodKey}, "cert", nil},
		{"key as certificate", certs.Config{CertFile: goodKey, KeyFile: goodKey}, "cert", certs.ErrBadPair},
		{"missing certificate", certs.Config{CertFile: filepath.Join(dir, "none.pem"), KeyFile: goodKey}, "cert", os.ErrNotExist},
		{"broken development CA", certs.Config{Dir: badCA}, "state-dir", certs.ErrBadCA},
		{"no state directory", certs.Config{}, "state-dir", nil},
		{"ACME and files", certs.Config{Dir: state, CertFile: good, KeyFile: goodKey, ACME: acme}, "acme-domain", nil},
		{"ACME domain", certs.Config{Dir: state, ACME: certs.ACMEConfig{Domains: []string{"*.relay.example"}}}, "acme-domain", nil},
		{"ACME without a directory", certs.Config{ACME: acme}, "state-dir", nil},
		{"roots without ACME", certs.Config{Dir: state, ACMERoots: good}, "acme-ca-roots", nil},
		{"missing roots", certs.Config{Dir: state, ACME: acme, ACMERoots: filepath.Join(dir, "none.pem")}, "acme-ca-roots", os.ErrNotExist},
		{"roots without a certificate", certs.Config{Dir: state, ACME: acme, ACMERoots: goodKey}, "acme-ca-roots", trust.ErrNoCertificate},
		{"HTTP-01 without ACME", certs.Config{Dir: state, HTTP01: true}, "acme-http", nil},
	} {
		checked := c.cfg.Check()
		var se *setting.Error
		if !errors.As(checked, &se) || se.Name != c.setting || (c.is != nil && !errors.Is(checked, c.is)) {
			t.Errorf("%s: Check() = %v; want a setting.Error for %s wrapping %v", c.name, checked, c.setting, c.is)
			continue
		}
		if p, err := certs.Open(c.cfg); err == nil {
			p.Close()
			t.Errorf("%s: Open took what Check refused", c.name)
		} else if err.Error() != checked.Error() {
			t.Errorf("%s: Open said %v, Check %v", c.name, err, checked)
		}
	}
	for _, c := range []certs.Config{{Dir: state}, {Dir: state, ACME: acme, HTTP01: true}, {CertFile: good, KeyFile: goodKey}} {
		if err := c.Check(); err != nil {
			t.Errorf("Check(%+v): %v", c, err)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("Check or a refused Open created %s: %v", state, err)
	}
}

// TestOpenACME: with ACME domains Open obtains a certificate from the CA
// (Pebble; TLS-ALPN-01 on the port that serves Provider.TLS) through the
// roots of ACMERoots, in the background, and Close ends that upkeep.
func TestOpenACME(t *testing.T) {
	port := pebbletest.FreePort(t)
	ca := pebbletest.Start(t, pebbletest.Options{ChallengePort: port})
	roots := filepath.Join(t.TempDir(), "directory.pem")
	if err := os.WriteFile(roots, ca.DirectoryPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	// Bound before Open, as the relay binds its port before ACME starts;
	// handshakes wait for the Provider.
	ready := make(chan *certs.Provider, 1)
	provider := sync.OnceValue(func() *certs.Provider { return <-ready })
	addr := serveOn(t, ln, func() *tls.Config {
		if p := provider(); p != nil {
			return p.TLS
		}
		return nil // Open failed: no certificate
	})
	logs := &relaytest.Buffer{}
	state := t.TempDir()
	opened, err := certs.Open(certs.Config{Dir: state, ACMERoots: roots, Logger: logger(logs),
		ACME: certs.ACMEConfig{Domains: []string{pebbletest.Domain}, CA: ca.Directory}})
	ready <- opened
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close()
	if opened.HTTPHandler != nil || opened.Dev != nil || opened.UDPTLS != nil {
		t.Fatal("ACME without HTTP01 serves TCP and UDP alike, with nothing else")
	}
	if !strings.Contains(logs.String(), "certificates from ACME") {
		t.Errorf("the start's log line does not say ACME:\n%s", logs)
	}
	relaytest.WaitFor(t, func() bool { return strings.Contains(logs.String(), "ACME certificate ready") })
	got := servedLeaf(t, addr, &tls.Config{RootCAs: ca.Roots, ServerName: pebbletest.Domain})
	if got.DNSNames[0] != pebbletest.Domain {
		t.Errorf("served a certificate for %v", got.DNSNames)
	}
	if _, err := os.Stat(filepath.Join(state, "acme")); err != nil {
		t.Errorf("the ACME state is not in Dir/acme: %v", err)
	}
	if err := opened.Reload(); !errors.Is(err, certs.ErrNothingToReload) {
		t.Errorf("Reload: %v, want ErrNothingToReload", err)
	}
	opened.Close() // goleak (TestMain) checks that ACME's upkeep ended
}
