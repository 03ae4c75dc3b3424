package server

import (
	"net"
	"testing"
	"time"
)

// TestKnownSourcesExpireAndEvict: a source is known for the ttl after it
// proved itself, the oldest is forgotten when the table is full, and IPv4
// in its IPv6-mapped form is the same source.
func TestKnownSourcesExpireAndEvict(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	a := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1000}
	aMapped := &net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 2000}
	b := &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1000}
	c := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 3), Port: 1000}

	k := newKnownSources(2, time.Minute)
	k.add(a, t0)
	if !k.known(aMapped, t0.Add(59*time.Second)) {
		t.Fatal("a source is not known within its ttl (or its mapped form differs)")
	}
	if k.known(a, t0.Add(time.Minute)) {
		t.Fatal("a source is still known after its ttl")
	}
	if k.known(b, t0) {
		t.Fatal("a source never seen is known")
	}
	k.add(a, t0.Add(2*time.Minute)) // proves itself again
	k.add(b, t0.Add(2*time.Minute))
	k.add(c, t0.Add(2*time.Minute)) // full: forgets the least recent, a
	if k.known(a, t0.Add(2*time.Minute)) || !k.known(b, t0.Add(2*time.Minute)) || !k.known(c, t0.Add(2*time.Minute)) {
		t.Fatal("a full table did not forget its oldest source")
	}

	off := newKnownSources(0, time.Minute)
	off.add(a, t0)
	if off.known(a, t0) {
		t.Fatal("KnownSources 0 remembers sources")
	}
	if k.known(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)}, t0) {
		t.Fatal("a non-UDP address is known")
	}
}
