//go:build !race

package certs_test

import (
	"testing"
)

// The race detector instruments atomics and allocates, hence the build tag.
func TestShortLivedGetCertificateAllocs(t *testing.T) {
	dev := mustDev(t, t.TempDir())
	s, err := dev.ShortLived()
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, s)
	var failed bool
	allocs := testing.AllocsPerRun(1000, func() {
		c, err := s.GetCertificate(nil)
		failed = failed || err != nil || c == nil
	})
	if failed {
		t.Fatal("GetCertificate failed")
	}
	if allocs != 0 {
		t.Errorf("GetCertificate allocates %v times per call, want 0", allocs)
	}
}
