package transport

import (
	"testing"

	"github.com/quic-go/webtransport-go"
)

// TestWebTransportBuildsWithPinnedQUIC keeps webtransport-go in go.mod, at a
// version that compiles against the pinned quic-go (v0.13.0 does not build
// with quic-go v0.65.0). This file failing to compile is the signal.
func TestWebTransportBuildsWithPinnedQUIC(t *testing.T) {
	s := &webtransport.Server{}
	if s.CheckOrigin != nil {
		t.Fatal("zero Server has a CheckOrigin")
	}
}
