// Package trust is what a device needs to trust a relay: a PEM file of CA
// certificates as a pool (CAPool), and a certificate's SHA-256 fingerprint
// in the form browsers and openssl print (Fingerprint), to compare with the
// one the relay logs for its development CA.
//
// It imports only the standard library, so that the device binary can use
// it without linking the relay's certificate machinery in package certs
// (ACME's autocert, the file watcher): cmd/device/depaware.txt pins that.
package trust

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrNoCertificate is returned, wrapped with the file's name, by CAPool for
// a file that holds no PEM certificate (a key, say).
var ErrNoCertificate = errors.New("trust: no certificate in PEM file")

// CAPool reads a PEM file of CA certificates into a pool. A file that
// cannot be read is an error wrapping the os error (fs.ErrNotExist and so
// on); one without a certificate wraps ErrNoCertificate.
func CAPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("trust: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%w: %s", ErrNoCertificate, file)
	}
	return pool, nil
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
