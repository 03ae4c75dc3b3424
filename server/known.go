package server

import (
	"net"
	"net/netip"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// knownSources remembers the source addresses that proved recently that
// they receive what is sent to them: a QUIC handshake completed from
// there, or a session from there ended. That proof is all a Retry asks
// for, so under a handshake spike (--retry-above) a known source skips it.
// The spikes a relay sees most are such sources: a fleet coming back after
// an outage, a NAT full of clocks after its uplink blinked. A spoofed
// flood names addresses that never completed a handshake, and still pays
// the Retry.
//
// Only the address is kept, in memory, never logged; the oldest are
// forgotten first once the table is full.
type knownSources struct {
	cache *lru.Cache[netip.Addr, int64] // source to when it proved itself (unix ns); nil: off
	ttl   time.Duration                 // static
}

// newKnownSources remembers up to size sources for ttl each; size 0 (or a
// ttl of 0) remembers none.
func newKnownSources(size int, ttl time.Duration) *knownSources {
	k := &knownSources{ttl: ttl}
	if size > 0 && ttl > 0 {
		k.cache, _ = lru.New[netip.Addr, int64](size) // errs only for size <= 0
	}
	return k
}

// add records that a proved itself at now.
func (k *knownSources) add(a net.Addr, now time.Time) {
	if src, ok := udpSource(a); ok && k.cache != nil {
		k.cache.Add(src, now.UnixNano())
	}
}

// known reports whether a proved itself within the ttl before now.
func (k *knownSources) known(a net.Addr, now time.Time) bool {
	src, ok := udpSource(a)
	if !ok || k.cache == nil {
		return false
	}
	at, ok := k.cache.Get(src)
	return ok && now.Sub(time.Unix(0, at)) < k.ttl
}

// udpSource is a UDP peer's address, an IPv4 one in its 4-byte form.
func udpSource(a net.Addr) (netip.Addr, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	return ua.AddrPort().Addr().Unmap(), true
}
