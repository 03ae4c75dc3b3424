package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACMEConfig configures certificates from an ACME CA (Let's Encrypt, say).
type ACMEConfig struct {
	// Domains the certificate names; webhook callers and devices dial
	// these. A TLS handshake without SNI (a client dialling an address)
	// gets the first.
	Domains []string
	// CA is the ACME directory URL; "" is Let's Encrypt's production one.
	CA string
	// Email is the account's contact, for the CA's expiry warnings.
	Email string
	// Dir holds the account key and the certificates (0700; files 0600).
	Dir string
	// HTTPClient talks to the CA; nil is http.DefaultClient.
	HTTPClient *http.Client
	// RenewBefore renews a certificate this long before it expires; 0 is
	// autocert's: a third of its lifetime, at most 30 days.
	RenewBefore time.Duration
	// Logger receives issuance, renewal and failure reports; nil discards.
	Logger *slog.Logger
}

// ACME obtains, stores and renews the relay's certificates with
// golang.org/x/crypto/acme/autocert: TLS-ALPN-01 on the relay's own TCP
// port, HTTP-01 where HTTPHandler is served. A renewed certificate serves
// new handshakes; sessions already up keep theirs, untouched.
type ACME struct {
	m   *autocert.Manager // static
	cfg ACMEConfig        // static
	log *slog.Logger      // static
}

// ErrACME wraps every failure to obtain a certificate: the CA unreachable,
// a challenge failed, a refused order.
var ErrACME = errors.New("certs: ACME")

// Check reports the first setting NewACME refuses, without touching Dir.
func (c *ACMEConfig) Check() error {
	if len(c.Domains) == 0 {
		return errors.New("certs: ACME needs at least one domain")
	}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, " /:*") {
			return fmt.Errorf("certs: ACME domain %q: want a DNS name", d)
		}
	}
	if c.Dir == "" {
		return errors.New("certs: ACME needs a directory for its account and certificates")
	}
	return nil
}

// NewACME checks cfg and prepares the manager; nothing is fetched yet (see
// Run).
func NewACME(cfg ACMEConfig) (*ACME, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: ACME directory: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dirURL := cfg.CA
	if dirURL == "" {
		dirURL = autocert.DefaultACMEDirectory
	}
	m := &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       autocert.DirCache(cfg.Dir),
		HostPolicy:  autocert.HostWhitelist(cfg.Domains...),
		Email:       cfg.Email,
		RenewBefore: cfg.RenewBefore,
		Client:      &acme.Client{DirectoryURL: dirURL, HTTPClient: cfg.HTTPClient},
	}
	return &ACME{m: m, cfg: cfg, log: cfg.Logger}, nil
}

// GetCertificate serves the certificate for the handshake's name, or the
// first domain's when the client sent no SNI, and answers TLS-ALPN-01
// challenges. It is tls.Config.GetCertificate.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	h := *hello
	if h.ServerName == "" {
		h.ServerName = a.cfg.Domains[0]
	}
	if slices.Contains(h.SupportedVersions, tls.VersionTLS13) {
		// autocert picks ECDSA only for a client that offers an ECDHE-ECDSA
		// TLS 1.2 suite, and a TLS 1.3-only client (every QUIC device)
		// offers none: it would get, and have fetched, an RSA certificate.
		// TLS 1.3 makes ECDSA P-256 mandatory to support.
		h.CipherSuites = append(slices.Clip(h.CipherSuites), tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	}
	return a.m.GetCertificate(&h)
}

// TLSConfig is the relay's TLS configuration: ACME certificates, and the
// acme-tls/1 protocol for TLS-ALPN-01 challenges (on TCP).
func (a *ACME) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: a.GetCertificate,
		NextProtos:     []string{acme.ALPNProto},
	}
}

// HTTPHandler answers HTTP-01 challenges and sends GET and HEAD requests
// for anything else to HTTPS (serve it on port 80 with --acme-http).
func (a *ACME) HTTPHandler() http.Handler {
	h := a.m.HTTPHandler(nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// autocert checks the Host header, port and all, against the
		// domains: a CA validating on a port other than 80 (a test CA, a
		// forwarded port) would be refused.
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
}

// Obtain gets a certificate for every domain now (from the cache if it
// has a good one), instead of at the first handshake, and returns the
// first failure, wrapping ErrACME. autocert bounds each attempt itself.
func (a *ACME) Obtain() error {
	for _, d := range a.cfg.Domains {
		cert, err := a.GetCertificate(probe(d))
		if err != nil {
			return fmt.Errorf("%w: %s from %s: %v", ErrACME, d, a.m.Client.DirectoryURL, err)
		}
		a.log.Info("ACME certificate ready", "domain", d, "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// probe is a handshake for domain as a modern client starts it, so that
// autocert picks (and fetches) the ECDSA certificate such clients get.
func probe(domain string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:        domain,
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:   []tls.CurveID{tls.CurveP256},
		CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}
}

// Run obtains the certificates, retrying after retry until it succeeds,
// then watches them until ctx ends: autocert renews in the background,
// and Run reports each renewal and warns, every check, while one is
// overdue (the CA unreachable, a challenge failing), while the certificate
// it has goes on serving.
func (a *ACME) Run(ctx context.Context, retry, check time.Duration) {
	for {
		err := a.Obtain()
		if err == nil {
			break
		}
		a.log.Error("ACME certificate not obtained; retrying", "err", err, "retry_in", retry)
		if !sleepCtx(ctx, retry) {
			return
		}
	}
	notAfter := make(map[string]time.Time)
	for sleepCtx(ctx, check) {
		for _, d := range a.cfg.Domains {
			cert, err := a.GetCertificate(probe(d))
			switch {
			case err != nil:
				a.log.Error("ACME certificate unavailable", "domain", d, "err", err)
			case !cert.Leaf.NotAfter.Equal(notAfter[d]):
				if !notAfter[d].IsZero() {
					a.log.Info("ACME certificate renewed", "domain", d, "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
				}
				notAfter[d] = cert.Leaf.NotAfter
			case time.Until(cert.Leaf.NotAfter) < a.renewBefore(cert.Leaf)/2:
				a.log.Warn("ACME renewal overdue; serving the old certificate", "domain", d, "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}
}

// renewBefore is when autocert renews c: RenewBefore ahead of its expiry,
// or a third of its lifetime, at most 30 days.
func (a *ACME) renewBefore(c *x509.Certificate) time.Duration {
	if a.cfg.RenewBefore > 0 {
		return min(a.cfg.RenewBefore, 30*24*time.Hour)
	}
	return min(c.NotAfter.Sub(c.NotBefore)/3, 30*24*time.Hour)
}

// Files returns the files the ACME directory holds, for tests of their
// modes.
func (a *ACME) Files() ([]string, error) {
	entries, err := os.ReadDir(a.cfg.Dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		names = append(names, filepath.Join(a.cfg.Dir, e.Name()))
	}
	slices.Sort(names)
	return names, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
