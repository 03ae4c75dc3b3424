package device

import (
	"context"
	"net"
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
	want := []string{"127.0.0.1:8443", "127.0.0.2:8443", "[::1]:9000", "127.0.0.1:8443"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("dial order %q, want %q", got, want)
		}
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
