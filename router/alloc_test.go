//go:build !race

// The race detector instruments memory accesses and can allocate, so the
// zero-allocation claims are checked only without it.

package router_test

import (
	"testing"

	"github.com/pixelrelay/relay/router"
)

func TestKeyOfLookupAllocs(t *testing.T) {
	r := router.New()
	r.Bind(bg, key(1), newFake(1))
	hit, miss := token(1), token(2)

	for _, tc := range []struct {
		name  string
		token []byte
		bound bool
	}{{"hit", hit, true}, {"miss", miss, false}} {
		t.Run(tc.name, func(t *testing.T) {
			var found bool
			allocs := testing.AllocsPerRun(1000, func() {
				found = r.Lookup(router.KeyOf(tc.token)) != nil
			})
			if found != tc.bound {
				t.Fatalf("Lookup found=%v, want %v", found, tc.bound)
			}
			if allocs != 0 {
				t.Errorf("KeyOf+Lookup allocates %v times per call, want 0", allocs)
			}
		})
	}
}

// TestRouteAllocs: the webhook's one call, Route, allocates nothing for a
// key bound here nor for a miss on a node alone.
func TestRouteAllocs(t *testing.T) {
	r := router.New()
	r.Bind(bg, key(1), newFake(1))
	for _, k := range []router.Key{key(1), key(2)} {
		if allocs := testing.AllocsPerRun(1000, func() { r.Route(k) }); allocs != 0 {
			t.Errorf("Route allocates %v times per call, want 0", allocs)
		}
	}
}
