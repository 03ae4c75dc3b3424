package trust_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/certs/trust"
)

func TestCAPool(t *testing.T) {
	dir := t.TempDir()
	dev, err := certs.LoadOrCreateDev(dir)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := trust.CAPool(dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf := dev.TLS.Certificates[0].Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("the pool of ca.pem does not verify the server certificate: %v", err)
	}
	if _, err := trust.CAPool(filepath.Join(dir, "ca-key.pem")); !errors.Is(err, trust.ErrNoCertificate) || !strings.Contains(err.Error(), "ca-key.pem") {
		t.Errorf("key file: %v, want ErrNoCertificate naming the file", err)
	}
	if _, err := trust.CAPool(filepath.Join(dir, "missing.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256 of the empty string.
	const want = "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
	if got := trust.Fingerprint(nil); got != want {
		t.Errorf("Fingerprint(nil) = %s, want %s", got, want)
	}
	der := []byte("any bytes")
	sum := sha256.Sum256(der)
	pairs := make([]string, len(sum))
	for i := range sum {
		pairs[i] = strings.ToUpper(hex.EncodeToString(sum[i : i+1]))
	}
	if got, want := trust.Fingerprint(der), strings.Join(pairs, ":"); got != want {
		t.Errorf("Fingerprint = %s, want %s", got, want)
	}
}
