//go:build !race

// The race detector allocates on its own; allocation counts are only
// meaningful without it.

package wire

import "testing"

func TestCheckTokenAllocs(t *testing.T) {
	tok := []byte(NewToken())
	if n := testing.AllocsPerRun(1000, func() {
		if CheckToken(tok) != nil {
			panic("valid token refused")
		}
	}); n != 0 {
		t.Errorf("CheckToken allocates %v times per valid token, want 0", n)
	}
}

func TestValidModeAllocs(t *testing.T) {
	good, bad := []byte("customapp"), []byte("nope")
	if n := testing.AllocsPerRun(1000, func() {
		if !ValidMode(good) || ValidMode(bad) {
			panic("ValidMode wrong")
		}
	}); n != 0 {
		t.Errorf("ValidMode allocates %v times per call, want 0", n)
	}
}
