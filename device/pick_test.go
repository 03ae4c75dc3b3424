package device

import (
	"context"
	"net"
	"slices"
	"testing"
)

// TestPickGoesRoundTheRelays: the agent dials its relays in turn, and a
// move skips the relay it leaves.
func TestPickGoesRoundTheRelays(t *testing.T) {
	a := &Agent{Addr: "127.0.0.1:8443, 127.0.0.2:8443,[::1]:9000"}
	ctx := context.Background()
	var got []string
	for range 4 {
		got = append(got, a.pick(ctx, nil).addr)
	}
	// From a random start, round the list.
	order := []string{"127.0.0.1:8443", "127.0.0.2:8443", "[::1]:9000"}
	first := slices.Index(order, got[0])
	for i := range got {
		if want := order[(first+i)%len(order)]; got[i] != want {
			t.Fatalf("dial order %q, want the list's order %q from a random start", got, order)
		}
	}
	starts := map[string]bool{}
	for range 100 {
		starts[(&Agent{Addr: a.Addr}).pick(ctx, nil).addr] = true
	}
	if len(starts) != len(order) {
		t.Fatalf("100 agents started at %v; a fleet must spread over every relay", starts)
	}
	leaving := &net.UDPAddr{IP: net.ParseIP("127.0.0.2"), Port: 8443}
	for range 6 {
		if r := a.pick(ctx, leaving); r.addr == "127.0.0.2:8443" {
			t.Fatal("a move picked the relay it leaves")
		}
	}
	one := &Agent{Addr: "127.0.0.1:8443"}
	if r := one.pick(ctx, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8443}); r.addr != "127.0.0.1:8443" {
		t.Fatalf("with one relay, a move goes back to it: got %q", r.addr)
	}
	if !sameAddr("[::1]:9000", &net.UDPAddr{IP: net.IPv6loopback, Port: 9000}) || sameAddr("[::1]:9001", &net.UDPAddr{IP: net.IPv6loopback, Port: 9000}) {
		t.Fatal("sameAddr")
	}
}
