package certs_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/certs/trust"
)

func mustDev(t *testing.T, dir string) *certs.Dev {
	t.Helper()
	dev, err := certs.LoadOrCreateDev(dir)
	if err != nil {
		t.Fatalf("LoadOrCreateDev: %v", err)
	}
	return dev
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", file)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func leaf(t *testing.T, dev *certs.Dev) *x509.Certificate {
	t.Helper()
	if n := len(dev.TLS.Certificates); n != 1 {
		t.Fatalf("TLS config has %d certificates, want 1", n)
	}
	c, err := x509.ParseCertificate(dev.TLS.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDevFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	before := time.Now()
	dev := mustDev(t, dir)

	if !dev.Created {
		t.Error("Created = false on first start")
	}
	if !filepath.IsAbs(dev.CAFile) || dev.CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("CAFile = %q, want absolute %q", dev.CAFile, filepath.Join(dir, "ca.pem"))
	}
	if dev.TLS.MinVersion != tls.VersionTLS13 || dev.TLS.NextProtos != nil {
		t.Errorf("TLS MinVersion = %#x NextProtos = %q, want TLS 1.3 and none", dev.TLS.MinVersion, dev.TLS.NextProtos)
	}

	ca := readCert(t, dev.CAFile)
	if got := trust.Fingerprint(ca.Raw); dev.CAFingerprint != got {
		t.Errorf("CAFingerprint = %s, ca.pem has %s", dev.CAFingerprint, got)
	}
	if ca.Subject.CommonName != "AWTRIX relay development CA" || !ca.IsCA || !ca.BasicConstraintsValid ||
		ca.MaxPathLen != 0 || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: CN %q IsCA %v MaxPathLen %d/%v KeyUsage %b", ca.Subject.CommonName, ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero, ca.KeyUsage)
	}
	if k, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.PublicKey)
	}
	if want := before.AddDate(10, 0, 0); ca.NotAfter.Before(want.Add(-time.Minute)) || ca.NotAfter.After(want.Add(time.Minute)) {
		t.Errorf("CA NotAfter = %v, want about %v", ca.NotAfter, want)
	}

	s := leaf(t, dev)
	if !s.Equal(readCert(t, filepath.Join(dir, "server.pem"))) {
		t.Error("TLS config does not hold server.pem")
	}
	if k, ok := s.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("server key is %T, want ECDSA P-256", s.PublicKey)
	}
	if len(s.ExtKeyUsage) != 1 || s.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || s.IsCA {
		t.Errorf("server ExtKeyUsage = %v IsCA %v", s.ExtKeyUsage, s.IsCA)
	}
	if want := before.Add(-time.Hour); s.NotBefore.Before(want.Add(-time.Minute)) || s.NotBefore.After(want.Add(time.Minute)) {
		t.Errorf("server NotBefore = %v, want about %v", s.NotBefore, want)
	}
	if want := before.AddDate(1, 0, 0); s.NotAfter.Before(want.Add(-time.Minute)) || s.NotAfter.After(want.Add(time.Minute)) {
		t.Errorf("server NotAfter = %v, want about %v", s.NotAfter, want)
	}
	if err := s.CheckSignatureFrom(ca); err != nil {
		t.Errorf("server certificate not signed by CA: %v", err)
	}

	modes := map[string]fs.FileMode{".": 0o700, "ca-key.pem": 0o600, "server-key.pem": 0o600, "ca.pem": 0o644, "server.pem": 0o644}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", name, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("dir holds %d entries, want 4 (no temporary files left)", len(entries))
	}
}

func TestDevReuse(t *testing.T) {
	dir := t.TempDir()
	first := mustDev(t, dir)
	second := mustDev(t, dir)
	if second.Created {
		t.Error("Created = true on second start")
	}
	if second.CAFingerprint != first.CAFingerprint {
		t.Errorf("CA changed: %s then %s", first.CAFingerprint, second.CAFingerprint)
	}
	if a, b := leaf(t, first).SerialNumber, leaf(t, second).SerialNumber; a.Cmp(b) != 0 {
		t.Errorf("server certificate re-issued: serial %v then %v", a, b)
	}
}

func TestDevServerVerifies(t *testing.T) {
	dev := mustDev(t, t.TempDir())
	pool, err := trust.CAPool(dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	s := leaf(t, dev)
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := s.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := s.Verify(x509.VerifyOptions{DNSName: "relay.example", Roots: pool}); err == nil {
		t.Error("verified for relay.example")
	}
}

func TestDevReissue(t *testing.T) {
	otherDir := t.TempDir()
	mustDev(t, otherDir)
	now := time.Now()

	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		now    time.Time
	}{
		{"near expiry", nil, now.AddDate(0, 0, 340)},
		{"expired", func(t *testing.T, dir string) {
			if _, err := certs.WriteServerAt(dir, now.AddDate(-1, 0, -1)); err != nil {
				t.Fatal(err)
			}
		}, now},
		{"expires in 20 days", func(t *testing.T, dir string) {
			if _, err := certs.WriteServerAt(dir, now.AddDate(-1, 0, 20)); err != nil {
				t.Fatal(err)
			}
		}, now},
		{"missing certificate", func(t *testing.T, dir string) { remove(t, dir, "server.pem") }, now},
		{"missing key", func(t *testing.T, dir string) { remove(t, dir, "server-key.pem") }, now},
		{"unparsable certificate", func(t *testing.T, dir string) {
			write(t, dir, "server.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}))
		}, now},
		{"key from another pair", func(t *testing.T, dir string) { copyFile(t, otherDir, dir, "server-key.pem") }, now},
		{"from another CA", func(t *testing.T, dir string) {
			copyFile(t, otherDir, dir, "server.pem")
			copyFile(t, otherDir, dir, "server-key.pem")
		}, now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := mustDev(t, dir)
			old := readCert(t, filepath.Join(dir, "server.pem")).SerialNumber
			if tt.damage != nil {
				tt.damage(t, dir)
			}
			dev, err := certs.LoadOrCreateDevAt(dir, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if dev.Created || dev.CAFingerprint != first.CAFingerprint {
				t.Fatalf("CA replaced: Created %v, fingerprint %s then %s", dev.Created, first.CAFingerprint, dev.CAFingerprint)
			}
			s := leaf(t, dev)
			if s.SerialNumber.Cmp(old) == 0 {
				t.Fatal("server certificate not re-issued")
			}
			if !s.Equal(readCert(t, filepath.Join(dir, "server.pem"))) {
				t.Error("re-issued certificate not written to server.pem")
			}
			if !tt.now.Add(30 * 24 * time.Hour).Before(s.NotAfter) {
				t.Errorf("re-issued certificate expires %v", s.NotAfter)
			}
			pool, err := trust.CAPool(dev.CAFile)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool, CurrentTime: tt.now}); err != nil {
				t.Errorf("re-issued certificate does not verify: %v", err)
			}
			if _, err := certs.Load(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")); err != nil {
				t.Errorf("re-issued pair does not load: %v", err)
			}
		})
	}
}

func TestDevBadCA(t *testing.T) {
	otherDir := t.TempDir()
	mustDev(t, otherDir)

	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		file   string // named in the error
	}{
		{"garbage", func(t *testing.T, dir string) { write(t, dir, "ca.pem", []byte("not PEM at all\n")) }, "ca.pem"},
		{"unparsable", func(t *testing.T, dir string) {
			write(t, dir, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 1, 2, 3}}))
		}, "ca.pem"},
		{"truncated", func(t *testing.T, dir string) {
			data, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
			if err != nil {
				t.Fatal(err)
			}
			write(t, dir, "ca.pem", data[:len(data)/2])
		}, "ca.pem"},
		{"missing key", func(t *testing.T, dir string) { remove(t, dir, "ca-key.pem") }, "ca-key.pem"},
		{"other CA's key", func(t *testing.T, dir string) { copyFile(t, otherDir, dir, "ca-key.pem") }, "ca-key.pem"},
		{"not a CA", func(t *testing.T, dir string) {
			copyFile(t, dir, dir, "server.pem", "ca.pem")
			copyFile(t, dir, dir, "server-key.pem", "ca-key.pem")
		}, "ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mustDev(t, dir)
			tt.damage(t, dir)
			before, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))

			dev, err := certs.LoadOrCreateDev(dir)
			if !errors.Is(err, certs.ErrBadCA) {
				t.Fatalf("LoadOrCreateDev = %v, %v; want ErrBadCA", dev, err)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, tt.file)) {
				t.Errorf("error does not name %s: %v", tt.file, err)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); !bytes.Equal(before, after) {
				t.Error("ca.pem was modified")
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		dir := t.TempDir()
		mustDev(t, dir)
		_, err := certs.LoadOrCreateDevAt(dir, time.Now().AddDate(10, 0, 1))
		if !errors.Is(err, certs.ErrBadCA) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("err = %v, want ErrBadCA for expiry", err)
		}
	})
}

func TestLoad(t *testing.T) {
	dir, otherDir := t.TempDir(), t.TempDir()
	dev := mustDev(t, dir)
	mustDev(t, otherDir)
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")

	cfg, err := certs.Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || len(cfg.Certificates) != 1 {
		t.Fatalf("MinVersion %#x, %d certificates", cfg.MinVersion, len(cfg.Certificates))
	}
	if got, want := cfg.Certificates[0].Leaf.SerialNumber, leaf(t, dev).SerialNumber; got.Cmp(want) != 0 {
		t.Errorf("loaded serial %v, want %v", got, want)
	}

	// A full chain (leaf, then CA) and a SEC 1 "EC PRIVATE KEY", as openssl writes them.
	chain := append(mustRead(t, certFile), mustRead(t, filepath.Join(dir, "ca.pem"))...)
	write(t, dir, "chain.pem", chain)
	k := cfg.Certificates[0].PrivateKey.(*ecdsa.PrivateKey)
	ecDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "ec-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))
	cfg, err = certs.Load(filepath.Join(dir, "chain.pem"), filepath.Join(dir, "ec-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cfg.Certificates[0].Certificate); n != 2 {
		t.Errorf("chain has %d certificates, want 2", n)
	}

	otherKey := filepath.Join(otherDir, "server-key.pem")
	_, err = certs.Load(certFile, otherKey)
	if !errors.Is(err, certs.ErrBadPair) || !strings.Contains(err.Error(), otherKey) || !strings.Contains(err.Error(), certFile) {
		t.Errorf("mismatched key: %v, want ErrBadPair naming both files", err)
	}
	missing := filepath.Join(dir, "missing.pem")
	if _, err := certs.Load(missing, keyFile); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing certificate: %v", err)
	}
	if _, err := certs.Load(certFile, missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing key: %v", err)
	}
	if _, err := certs.Load(keyFile, keyFile); !errors.Is(err, certs.ErrBadPair) {
		t.Errorf("key as certificate: %v, want ErrBadPair", err)
	}
	if _, err := certs.Load(certFile, certFile); !errors.Is(err, certs.ErrBadPair) {
		t.Errorf("certificate as key: %v, want ErrBadPair", err)
	}
}

func TestHandshake(t *testing.T) {
	dev := mustDev(t, t.TempDir())
	pool, err := trust.CAPool(dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", dev.TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		_, err = c.Write([]byte("ok"))
		served <- err
	}()

	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(io.LimitReader(c, 2))
	if err != nil || string(got) != "ok" {
		t.Fatalf("read %q, %v", got, err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("version %#x, want TLS 1.3", v)
	}
	if err := <-served; err != nil {
		t.Fatalf("server: %v", err)
	}

	// An unrelated root must not verify the development certificate.
	other := mustDev(t, t.TempDir())
	otherPool, err := trust.CAPool(other.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	rejected := make(chan struct{})
	go func() {
		defer close(rejected)
		if c, err := ln.Accept(); err == nil {
			c.(*tls.Conn).Handshake() // fails: the client rejects the certificate
			c.Close()
		}
	}()
	var unknown x509.UnknownAuthorityError
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: otherPool, ServerName: "localhost"}); !errors.As(err, &unknown) {
		t.Errorf("dial with another CA: %v, want x509.UnknownAuthorityError", err)
	}
	<-rejected
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func write(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies name from src to dst, as to[0] when given.
func copyFile(t *testing.T, src, dst, name string, to ...string) {
	t.Helper()
	out := name
	if len(to) > 0 {
		out = to[0]
	}
	write(t, dst, out, mustRead(t, filepath.Join(src, name)))
}

// TestLoadOrCreateKey: a key is made once (0600), read back the same by
// every later call, also by callers racing to create it; a damaged file is
// an error naming the fix, never silently replaced.
func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "quic-token.key")
	var keys [8][certs.KeySize]byte
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := certs.LoadOrCreateKey(name)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i := range keys {
		if keys[i] != keys[0] {
			t.Fatalf("racing creators got different keys: %x vs %x", keys[i], keys[0])
		}
	}
	if keys[0] == ([certs.KeySize]byte{}) {
		t.Fatal("the key is all zeros")
	}
	fi, err := os.Stat(name)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if again, err := certs.LoadOrCreateKey(name); err != nil || again != keys[0] {
		t.Fatalf("read back: %x, %v", again, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	for _, bad := range []string{"", "abc\n", strings.Repeat("zz", certs.KeySize), strings.Repeat("ab", certs.KeySize+1)} {
		if err := os.WriteFile(name, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := certs.LoadOrCreateKey(name); err == nil || !strings.Contains(err.Error(), "remove the file") {
			t.Fatalf("damaged key %q: %v", bad, err)
		}
	}
}
