//go:build !race

package limit_test

import (
	"net/netip"
	"testing"

	"github.com/pixelrelay/relay/limit"
)

func TestAllowExistingKeyDoesNotAllocate(t *testing.T) {
	k := limit.New[[32]byte](limit.Rate{PerSecond: 1, Burst: 1})
	var key [32]byte
	k.Allow(key, t0) // creates the bucket and empties it
	allocs := testing.AllocsPerRun(1000, func() {
		k.Allow(key, t0) // refused: the reserve-and-cancel path
	})
	if allocs != 0 {
		t.Fatalf("refused Allow: %v allocs, want 0", allocs)
	}
	passing := limit.New[[32]byte](limit.Rate{PerSecond: 1e9, Burst: 1e9})
	passing.Allow(key, t0)
	allocs = testing.AllocsPerRun(1000, func() {
		passing.Allow(key, t0)
	})
	if allocs != 0 {
		t.Fatalf("passing Allow: %v allocs, want 0", allocs)
	}
}

// TestAddrKeyDoesNotAllocate: maphash.Comparable moves keys holding
// pointers to the heap, but netip.Addr's pointer is its interned zone
// handle, so an address built per request costs nothing either.
func TestAddrKeyDoesNotAllocate(t *testing.T) {
	ip := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	k := limit.New[netip.Addr](limit.Rate{PerSecond: 1e9, Burst: 1e9})
	k.Allow(netip.AddrFrom16(ip), t0)
	if allocs := testing.AllocsPerRun(1000, func() { k.Allow(netip.AddrFrom16(ip), t0) }); allocs != 0 {
		t.Fatalf("netip.Addr key: %v allocs, want 0", allocs)
	}
}
