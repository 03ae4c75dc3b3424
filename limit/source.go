package limit

import "net/netip"

// Source keys a caller's address for per-source limits: an IPv4 address as
// is, an IPv6 address by its /64, the block one subscriber gets and whose
// low half a host picks at will. An IPv4-mapped IPv6 address is its IPv4
// address; an address that could not be read is the zero Addr, one shared
// key. It does not allocate.
func Source(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.Addr()
	}
	return a
}
