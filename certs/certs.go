// Package certs owns the relay's TLS material: an operator's certificate
// and key (Load), and for development a local CA plus a server certificate
// it signs (LoadOrCreateDev). Devices trust the development CA through
// CAPool or by its Fingerprint.
//
// The development CA is created once and never replaced behind the
// operator's back, because devices were told to trust it: an unusable CA is
// an error. The server certificate is cheap and is re-issued whenever it is
// missing, broken, near expiry or from another CA.
package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Errors returned (wrapped, with the files involved) by this package.
var (
	ErrNoCertificate = errors.New("certs: no certificate in PEM file")
	ErrBadPair       = errors.New("certs: unusable certificate and key")
	ErrBadCA         = errors.New("certs: unusable development CA")
)

// Load reads an operator's PEM certificate chain (leaf first) and its
// private key and returns a server configuration that uses them.
func Load(certFile, keyFile string) (*tls.Config, error) {
	cert, err := readPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return serverConfig(cert), nil
}

// Fingerprint returns the SHA-256 fingerprint of a DER certificate as
// uppercase hex pairs joined by ':', the form browsers and openssl print.
func Fingerprint(der []byte) string {
	const digits = "0123456789ABCDEF"
	sum := sha256.Sum256(der)
	b := make([]byte, 0, len(sum)*3-1)
	for i, c := range sum {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, digits[c>>4], digits[c&0xf])
	}
	return string(b)
}

// CAPool reads a PEM file of CA certificates into a pool.
func CAPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("certs: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%w: %s", ErrNoCertificate, file)
	}
	return pool, nil
}

func serverConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	}
}

// readPair loads a certificate chain (leaf first) and its key with
// tls.X509KeyPair, which also fills in the leaf. Its error says what is
// wrong (no PEM data, an unparsable key, a key that does not match); ours
// adds which files.
func readPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: private key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: certificate %s, key %s: %w", ErrBadPair, certFile, keyFile, err)
	}
	return cert, nil
}
