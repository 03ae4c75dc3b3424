package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Lifetime of the short-lived certificates issued by ShortLived.
//
// Browsers accept an untrusted WebTransport server only through
// serverCertificateHashes, and only if its certificate is ECDSA P-256 and
// valid for at most 14 days (NotAfter - NotBefore). ShortLivedValidity is
// that span, the backdated hour included, with days to spare; renewal
// starts once less than ShortLivedRenewBefore is left, so a page that got
// the hash shortly before a renewal still has days in which to use it.
const (
	ShortLivedValidity    = 10 * 24 * time.Hour
	ShortLivedRenewBefore = 4 * 24 * time.Hour
)

// maxHashValidity is the longest validity that WebTransport's
// serverCertificateHashes accepts.
const maxHashValidity = 14 * 24 * time.Hour

// Compile-time checks: converting a negative constant to uint64 does not
// compile. The validity stays within the browser limit, and a fresh
// certificate is not already due for renewal.
const (
	_ = uint64(maxHashValidity - ShortLivedValidity)
	_ = uint64(ShortLivedValidity - backdate - ShortLivedRenewBefore - 1)
)

// ShortLived issues short-lived server certificates from the development
// CA and renews them. They live only in memory: each process start issues
// a new one. Devices that verify against ca.pem accept them like the
// server.pem certificate; browsers accept them by the hashes from Hashes.
//
// Renewal is lazy: GetCertificate and Hashes renew when they find the
// certificate due, so there is no goroutine to stop.
type ShortLived struct {
	ca  tls.Certificate  // the CA pair; static after construction
	now func() time.Time // time.Now outside tests; static after construction

	// cur is the certificate being served: never nil after construction,
	// replaced (under mu) and never modified, so readers load it without a
	// lock.
	cur atomic.Pointer[shortCert]

	mu sync.Mutex // serializes renewals; the hot path never takes it
}

// shortCert is one issued certificate. Immutable.
type shortCert struct {
	cert tls.Certificate // chain [leaf, CA], Leaf and PrivateKey set
	hash [sha256.Size]byte
	// renewAt is a wall-clock time (no monotonic reading, being derived
	// from the parsed NotAfter), so comparisons with it use the wall clock
	// that clients judge validity by, even after a suspend, during which
	// Linux's monotonic clock stops.
	renewAt time.Time
}

// ShortLived returns an issuer for the development CA in d and issues its
// first certificate: ECDSA P-256 for localhost, 127.0.0.1 and ::1 (the
// names of the server.pem certificate), valid from an hour ago for
// ShortLivedValidity in all, and renewed once less than
// ShortLivedRenewBefore is left.
//
// d must come from LoadOrCreateDev. A CA that has expired is an error
// wrapping ErrBadCA; one that expires sooner than ShortLivedValidity
// yields certificates that end with it.
func (d *Dev) ShortLived() (*ShortLived, error) {
	return d.shortLived(time.Now)
}

func (d *Dev) shortLived(now func() time.Time) (*ShortLived, error) {
	if d.ca.Leaf == nil || d.ca.PrivateKey == nil {
		return nil, fmt.Errorf("%w: Dev does not come from LoadOrCreateDev", ErrBadCA)
	}
	c, err := issueShortLived(d.ca, now())
	if err != nil {
		return nil, err
	}
	s := &ShortLived{ca: d.ca, now: now}
	s.cur.Store(c)
	return s, nil
}

// GetCertificate is for tls.Config.GetCertificate: it returns the current
// certificate, renewing it first if due. The ClientHelloInfo is ignored,
// since one certificate serves every name. Safe for concurrent use; unless
// a renewal is due it takes no lock and does not allocate.
//
// It fails, with an error wrapping ErrBadCA, only once the CA has expired.
func (s *ShortLived) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := s.current()
	if err != nil {
		return nil, err
	}
	return &c.cert, nil
}

// Hashes returns the SHA-256 of the current certificate's DER, for
// WebTransport's serverCertificateHashes. Like GetCertificate it renews
// first if due, so the hash handed out is the one of the certificate the
// next handshake will present. There is one hash: a page should fetch it
// just before it connects, not keep it across reconnects, since the
// certificate changes every few days.
//
// Hashes returns nil once the CA has expired (GetCertificate then reports
// the error).
func (s *ShortLived) Hashes() [][sha256.Size]byte {
	c, err := s.current()
	if err != nil {
		return nil
	}
	return [][sha256.Size]byte{c.hash}
}

// TLSConfig returns a TLS 1.3 server configuration that takes its
// certificate from GetCertificate. NextProtos is left for the caller (or
// quic-go's http3 and webtransport packages) to set.
func (s *ShortLived) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: s.GetCertificate,
	}
}

// current is the hot path: an atomic load and a time comparison.
func (s *ShortLived) current() (*shortCert, error) {
	if c := s.cur.Load(); !s.now().After(c.renewAt) {
		return c, nil
	}
	return s.renew()
}

// renew issues a new certificate unless another caller did so while this
// one waited for the lock.
func (s *ShortLived) renew() (*shortCert, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if c := s.cur.Load(); !now.After(c.renewAt) {
		return c, nil
	}
	c, err := issueShortLived(s.ca, now)
	if err != nil {
		return nil, err
	}
	s.cur.Store(c)
	return c, nil
}

func issueShortLived(ca tls.Certificate, now time.Time) (*shortCert, error) {
	if err := checkCA(ca.Leaf, now); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCA, err)
	}
	// Certificates hold whole seconds: truncating here makes NotAfter -
	// NotBefore exactly ShortLivedValidity once encoded.
	notBefore := now.Add(-backdate).Truncate(time.Second)
	notAfter := notBefore.Add(ShortLivedValidity)
	cert, err := issueLeaf(ca, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	renewAt := cert.Leaf.NotAfter.Add(-ShortLivedRenewBefore)
	if ca.Leaf.NotAfter.Before(notAfter) {
		// Cut short by the CA's expiry: renewing could not do better, so
		// this one is served to its end (after which issuing fails).
		renewAt = cert.Leaf.NotAfter
	}
	cert.Certificate = append(cert.Certificate, ca.Certificate[0])
	return &shortCert{
		cert:    cert,
		hash:    sha256.Sum256(cert.Certificate[0]),
		renewAt: renewAt,
	}, nil
}
