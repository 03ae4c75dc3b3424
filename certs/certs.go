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
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Errors returned (wrapped, with the files involved) by this package.
var (
	ErrNoCertificate = errors.New("certs: no certificate in PEM file")
	ErrNoKey         = errors.New("certs: no private key in PEM file")
	ErrKeyMismatch   = errors.New("certs: private key does not match certificate")
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

// readPair loads a certificate chain and its key. It does the parsing that
// tls.X509KeyPair does itself so that each failure has a sentinel and names
// the file at fault.
func readPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: private key: %w", err)
	}

	var cert tls.Certificate
	var keyDER []byte
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			cert.Certificate = append(cert.Certificate, b.Bytes)
		}
	}
	if len(cert.Certificate) == 0 {
		return tls.Certificate{}, fmt.Errorf("%w: %s", ErrNoCertificate, certFile)
	}
	for rest := keyPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		// Skips "EC PARAMETERS", which openssl writes before EC keys.
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			keyDER = b.Bytes
			break
		}
	}
	if keyDER == nil {
		return tls.Certificate{}, fmt.Errorf("%w: %s", ErrNoKey, keyFile)
	}

	if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: %s: %w", certFile, err)
	}
	key, err := parseKey(keyDER)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: %s: %w", keyFile, err)
	}
	pub, ok := cert.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return tls.Certificate{}, fmt.Errorf("%w: key %s, certificate %s", ErrKeyMismatch, keyFile, certFile)
	}
	cert.PrivateKey = key
	return cert, nil
}

// parseKey accepts the encodings tls.X509KeyPair accepts: PKCS #8, SEC 1
// (EC) and PKCS #1 (RSA).
func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("unparsable private key (want PKCS #8, EC or PKCS #1)")
}
