package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
)

// Errors returned (wrapped, with the files involved) by this package.
var (
	ErrBadPair = errors.New("certs: unusable certificate and key")
	ErrBadCA   = errors.New("certs: unusable development CA")
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
