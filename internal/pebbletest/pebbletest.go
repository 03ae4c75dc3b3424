// Package pebbletest runs Pebble, Let's Encrypt's own test ACME CA, in the
// test process, on loopback: the relay's ACME tests obtain and renew real
// certificates from it and never reach the internet.
//
// Pebble validates challenges for real: for TLS-ALPN-01 it resolves the
// domain, through a DNS server of Let's Encrypt's challtestsrv that answers
// 127.0.0.1 for every name, and opens a TLS connection to the port given
// here, where the relay must answer. Tests ask for Domain and dial
// 127.0.0.1 with it as the server name.
package pebbletest

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Domain is the name tests get certificates for.
const Domain = "relay.test"

// CA is a running Pebble.
type CA struct {
	Directory string       // the ACME directory URL
	Client    *http.Client // trusts the directory's own certificate
	Roots     *x509.CertPool
	RootPEM   []byte // the root issued certificates chain to
	// DirectoryPEM is the certificate of the directory's HTTPS server,
	// for a client that is not Client (a relay process).
	DirectoryPEM []byte

	ca *ca.CAImpl
}

// Options shape one Pebble.
type Options struct {
	// ChallengePort is where Pebble connects to validate TLS-ALPN-01
	// challenges: the relay's TCP port.
	ChallengePort int
	// HTTPPort is where it validates HTTP-01 challenges; 0 is
	// ChallengePort.
	HTTPPort int
	// Validity of the certificates it issues; 0 is Pebble's default
	// (about five years).
	Validity time.Duration
}

// Start runs a Pebble until the end of the test.
func Start(tb testing.TB, opt Options) *CA {
	tb.Helper()
	// A real CA's randomness that tests need not wait out: no sleep before
	// validating, no nonce rejected at random.
	tb.Setenv("PEBBLE_VA_NOSLEEP", "1")
	tb.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "", 0)
	dnsAddr := "127.0.0.1:" + strconv.Itoa(FreePort(tb))
	dns, err := challtestsrv.New(challtestsrv.Config{Log: logger, DNSAddrs: []string{dnsAddr}})
	if err != nil {
		tb.Fatalf("pebbletest: DNS: %v", err)
	}
	dns.SetDefaultDNSIPv4("127.0.0.1")
	dns.SetDefaultDNSIPv6("")
	dns.Run()
	tb.Cleanup(dns.Shutdown)
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: uint64(opt.Validity / time.Second)}}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	if opt.HTTPPort == 0 {
		opt.HTTPPort = opt.ChallengePort
	}
	validator := va.New(logger, opt.HTTPPort, opt.ChallengePort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	srv := httptest.NewTLSServer(front.Handler())
	tb.Cleanup(srv.Close)

	root := authority.GetRootCert(0)
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	dirPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return &CA{Directory: srv.URL + "/dir", Client: srv.Client(), Roots: pool, RootPEM: root.PEM(), DirectoryPEM: dirPEM, ca: authority}
}

// FreePort returns a port that is free on 127.0.0.1 for both TCP and UDP
// now, for a relay whose port Pebble must know before the relay starts.
func FreePort(tb testing.TB) int {
	tb.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	tb.Fatal("pebbletest: no port free for both TCP and UDP")
	return 0
}
