package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/pixelrelay/relay/certs/trust"
)

// Dev is the development TLS material returned by LoadOrCreateDev.
type Dev struct {
	CAFile        string      // absolute path of ca.pem
	CAFingerprint string      // SHA-256 of the CA certificate DER, uppercase hex pairs joined by ':'
	TLS           *tls.Config // server config holding the server certificate (no NextProtos set)
	Created       bool        // true when this call created the CA (first start)

	// ca is the CA pair (key included) that ShortLived signs with. Static
	// after construction.
	ca tls.Certificate
}

// File names inside the development directory.
const (
	caFile        = "ca.pem"
	caKeyFile     = "ca-key.pem"
	serverFile    = "server.pem"
	serverKeyFile = "server-key.pem"
)

const (
	caName = "AWTRIX relay development CA"
	// backdate absorbs clock skew between the relay and devices.
	backdate = time.Hour
	// renewBefore re-issues the server certificate well before devices
	// would start rejecting it.
	renewBefore = 30 * 24 * time.Hour
)

// LoadOrCreateDev loads the development CA and server certificate from dir,
// creating dir (0700), the CA and the server certificate when missing.
//
// The files are ca.pem, ca-key.pem (0600), server.pem and server-key.pem
// (0600). The CA is ECDSA P-256 and valid for 10 years; the server
// certificate is ECDSA P-256 for localhost, 127.0.0.1 and ::1, valid for a
// year. On later starts both are reused; the server certificate is
// re-issued from the existing CA when it is missing, unparsable, expires
// within 30 days or was not signed by the CA. An unusable CA is an error
// wrapping ErrBadCA: it is never replaced silently, since devices trust it.
func LoadOrCreateDev(dir string) (*Dev, error) {
	return loadOrCreateDev(dir, time.Now())
}

// CheckDev reports what would make LoadOrCreateDev(dir) fail on an
// existing CA in dir, and creates nothing: a missing CA is no error (it
// would be created), one that does not load or has expired is.
func CheckDev(dir string) error {
	return checkDev(dir, time.Now())
}

func checkDev(dir string, now time.Time) error {
	certPath, keyPath := filepath.Join(dir, caFile), filepath.Join(dir, caKeyFile)
	if _, err := os.Lstat(certPath); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	_, err := loadCA(certPath, keyPath, now)
	return err
}

func loadOrCreateDev(dir string, now time.Time) (*Dev, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	ca, created, err := loadOrCreateCA(dir, now)
	if err != nil {
		return nil, err
	}
	server, err := loadOrIssueServer(dir, ca, now)
	if err != nil {
		return nil, err
	}
	return &Dev{
		CAFile:        filepath.Join(dir, caFile),
		CAFingerprint: trust.Fingerprint(ca.Certificate[0]),
		TLS:           serverConfig(server),
		Created:       created,
		ca:            ca,
	}, nil
}

// loadOrCreateCA creates the CA only when ca.pem does not exist. Any other
// problem, a missing ca-key.pem included, needs the operator to decide.
func loadOrCreateCA(dir string, now time.Time) (ca tls.Certificate, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, caFile), filepath.Join(dir, caKeyFile)
	if _, err := os.Lstat(certPath); errors.Is(err, fs.ErrNotExist) {
		ca, err := issueCA(now)
		if err != nil {
			return tls.Certificate{}, false, err
		}
		if err := save(ca, certPath, keyPath); err != nil {
			return tls.Certificate{}, false, err
		}
		return ca, true, nil
	}

	ca, err = loadCA(certPath, keyPath, now)
	return ca, false, err
}

// loadCA reads an existing CA pair and checks it.
func loadCA(certPath, keyPath string, now time.Time) (tls.Certificate, error) {
	ca, err := readPair(certPath, keyPath)
	if err == nil {
		err = checkCA(ca.Leaf, now)
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf(
			"%w: %w (devices trust this CA, so it is not replaced: restore it, or remove %s and %s to create a new one)",
			ErrBadCA, err, certPath, keyPath)
	}
	return ca, nil
}

func checkCA(c *x509.Certificate, now time.Time) error {
	switch {
	case !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0:
		return errors.New("not a CA certificate")
	case now.After(c.NotAfter):
		return fmt.Errorf("expired on %s", c.NotAfter.UTC().Format(time.DateOnly))
	}
	return nil
}

// loadOrIssueServer re-issues on any problem with the server pair: no
// device trusts it directly, so replacing it costs nothing.
func loadOrIssueServer(dir string, ca tls.Certificate, now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, serverFile), filepath.Join(dir, serverKeyFile)
	if cert, err := readPair(certPath, keyPath); err == nil && serverUsable(cert.Leaf, ca.Leaf, now) {
		return cert, nil
	}
	cert, err := issueServer(ca, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := save(cert, certPath, keyPath); err != nil {
		return tls.Certificate{}, err
	}
	return cert, nil
}

func serverUsable(c, ca *x509.Certificate, now time.Time) bool {
	return c.CheckSignatureFrom(ca) == nil &&
		!now.Before(c.NotBefore) &&
		now.Add(renewBefore).Before(c.NotAfter)
}

func issueCA(now time.Time) (tls.Certificate, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: caName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	return issue(tmpl, nil)
}

// issueServer signs a server certificate valid from now for a year.
func issueServer(ca tls.Certificate, now time.Time) (tls.Certificate, error) {
	return issueLeaf(ca, now.Add(-backdate), now.AddDate(1, 0, 0))
}

// issueLeaf signs a server certificate for localhost, 127.0.0.1 and ::1,
// valid from notBefore to notAfter, or until the CA expires if that is
// sooner: a certificate outliving its CA would not verify anyway. The
// server.pem certificate and the short-lived ones both come from here, so
// they always carry the same names.
func issueLeaf(ca tls.Certificate, notBefore, notAfter time.Time) (tls.Certificate, error) {
	if notAfter.After(ca.Leaf.NotAfter) {
		notAfter = ca.Leaf.NotAfter
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return issue(tmpl, &ca)
}

// issue creates a fresh P-256 key and a certificate for it from tmpl,
// signed by parent, or self-signed when parent is nil. The serial number is
// left to x509.CreateCertificate, which picks a random RFC 5280 one.
func issue(tmpl *x509.Certificate, parent *tls.Certificate) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: generate key: %w", err)
	}
	signer, signerCert := any(key), tmpl
	if parent != nil {
		signer, signerCert = parent.PrivateKey, parent.Leaf
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: create %q certificate: %w", tmpl.Subject.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// save writes the key before the certificate, so that an interrupted first
// start leaves no ca.pem and the next start simply creates the CA again.
func save(cert tls.Certificate, certPath, keyPath string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644)
}

// writeFile replaces name atomically (temporary file in the same directory,
// then rename), so a crash never leaves a truncated key or certificate.
func writeFile(name string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("certs: write %s: %w", name, err)
		}
	}()
	// Chmod rather than relying on CreateTemp's 0600 so the mode is exact
	// whatever the umask.
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
