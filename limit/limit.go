// Package limit keeps one token bucket per key (a device token's hash, a
// caller's address) in bounded memory.
//
// A bucket that has refilled completely behaves exactly like one that was
// never created, so such entries are dropped: lazily, by the Allow that
// finds its shard has grown, with no goroutine of its own. Each shard also
// has a hard cap on entries. When a shard is full of buckets that are still
// refilling, a new key is let through uncounted rather than refused: under a
// flood of distinct keys the limiter degrades to "no limit for newcomers",
// never to "no service for anyone". Such passes are counted (Untracked).
//
// The bucket arithmetic is golang.org/x/time/rate's.
package limit

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

const (
	// shardCount is a power of two so that a shard is picked with a mask.
	shardCount = 64
	// DefaultMaxEntries bounds the entries of one Keyed across its shards.
	// An entry costs about 150 bytes with a 32-byte key, so the cap is
	// about 40 MB; a key occupies an entry only while its bucket refills
	// (burst/rate after its last use: 2 s with the relay's defaults).
	DefaultMaxEntries = 1 << 18
	// minSweep is the shard size below which inserts never sweep.
	minSweep = 64
)

// Rate is the shape of a token bucket: Burst requests at once, refilled at
// PerSecond. It carries the relay's one rule for limits, which every
// configuration and every flag that sets a limit follows: a zero PerSecond
// or a zero Burst turns the limit off.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Off reports whether r lets everything through.
func (r Rate) Off() bool {
	return !(r.PerSecond > 0) || r.PerSecond >= float64(rate.Inf) || r.Burst <= 0
}

// Check reports a rate that is neither a limit nor off: negative or NaN.
func (r Rate) Check() error {
	if !(r.PerSecond >= 0) || r.Burst < 0 {
		return fmt.Errorf("limit: rate %v/s, burst %d: want both >= 0 (0 turns the limit off)", r.PerSecond, r.Burst)
	}
	return nil
}

// Keyed is a set of token buckets, one per key, all with the same rate and
// burst. It is safe for concurrent use. The zero value is not usable; call
// New.
type Keyed[K comparable] struct {
	limit       rate.Limit    // static
	burst       int           // static
	seed        maphash.Seed  // static
	maxPerShard int           // static after New (export_test.go lowers it)
	fullSweep   time.Duration // least time between sweeps of a full shard; static
	shards      []shard[K]    // len shardCount; nil when unlimited

	untracked atomic.Uint64 // keys let through because their shard was full
}

type shard[K comparable] struct {
	mu sync.Mutex // guards the fields below
	m  map[K]*rate.Limiter
	// sweepAt is the size at which the next insert sweeps first: twice
	// what the last sweep left, so sweeping is amortized O(1) per insert.
	sweepAt int
	// peak is the largest size since the map was last rebuilt; a sweep
	// that leaves a quarter of it rebuilds the map, which Go never shrinks.
	peak int
	// lastFull is when a sweep last left the shard full.
	lastFull time.Time
	_        [8]byte // 64 bytes a shard: neighbouring locks stay off one cache line
}

// New returns buckets of shape r; a new key starts with a full bucket. If
// r is off (Rate.Off), Allow always passes and nothing is stored.
func New[K comparable](r Rate) *Keyed[K] {
	k := &Keyed[K]{limit: rate.Limit(r.PerSecond), burst: r.Burst, seed: maphash.MakeSeed(), maxPerShard: DefaultMaxEntries / shardCount}
	if r.Off() {
		return k
	}
	// A full shard is swept again once one token's worth of time has
	// passed, bounded so that a very slow rate still recovers its space
	// and a very fast one does not sweep on every insert.
	k.fullSweep = min(max(time.Duration(float64(time.Second)/r.PerSecond), time.Millisecond), time.Second)
	k.shards = make([]shard[K], shardCount)
	for i := range k.shards {
		k.shards[i].m = make(map[K]*rate.Limiter)
		k.shards[i].sweepAt = minSweep
	}
	return k
}

// Unlimited reports whether k lets everything through.
func (k *Keyed[K]) Unlimited() bool { return k.shards == nil }

// Allow takes one token from key's bucket at time now. If the bucket is
// empty it takes nothing and returns false and how long from now until the
// next token is there. now should come from time.Now (monotonic); a now
// earlier than a previous one for the same key counts as that earlier time.
//
// For a key that already has a bucket, Allow does not allocate.
func (k *Keyed[K]) Allow(key K, now time.Time) (ok bool, retryAfter time.Duration) {
	if k.shards == nil {
		return true, 0
	}
	s := &k.shards[maphash.Comparable(k.seed, key)&(shardCount-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	lim := s.m[key]
	if lim == nil {
		if !s.room(k, now) {
			k.untracked.Add(1)
			return true, 0
		}
		lim = rate.NewLimiter(k.limit, k.burst)
		s.m[key] = lim
		s.peak = max(s.peak, len(s.m))
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	// The bucket is empty. Reserve the next token only to learn when it
	// comes, then hand it back: a refused call costs the caller nothing.
	// Nobody else holds lim (the shard lock is ours), so the cancel
	// restores exactly what the reservation took.
	r := lim.ReserveN(now, 1)
	retryAfter = r.DelayFrom(now)
	r.CancelAt(now)
	return false, retryAfter
}

// room makes room for one more entry if it can, and reports whether there
// is room. s.mu is held.
func (s *shard[K]) room(k *Keyed[K], now time.Time) bool {
	if len(s.m) >= s.sweepAt {
		full := len(s.m) >= k.maxPerShard
		if !full || now.Sub(s.lastFull) >= k.fullSweep || now.Before(s.lastFull) {
			s.sweep(k, now)
		}
	}
	return len(s.m) < k.maxPerShard
}

// sweep drops the entries whose bucket is full at now. s.mu is held.
func (s *shard[K]) sweep(k *Keyed[K], now time.Time) {
	full := float64(k.burst)
	for key, lim := range s.m {
		if lim.TokensAt(now) >= full {
			delete(s.m, key)
		}
	}
	n := len(s.m)
	if n >= k.maxPerShard {
		s.lastFull = now
	}
	if s.peak >= 4*minSweep && n <= s.peak/4 {
		m := make(map[K]*rate.Limiter, 2*n)
		for key, lim := range s.m {
			m[key] = lim
		}
		s.m, s.peak = m, n
	}
	s.sweepAt = min(max(2*n, minSweep), k.maxPerShard)
}

// Len returns the number of keys that have a bucket, including full ones
// that no sweep has dropped yet.
func (k *Keyed[K]) Len() int {
	n := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Untracked returns how many calls Allow let through without a bucket
// because the key's shard was full of buckets still refilling.
func (k *Keyed[K]) Untracked() uint64 { return k.untracked.Load() }

// Bucket is one token bucket, for a single owner such as one session. It is
// safe for concurrent use.
type Bucket struct {
	l *rate.Limiter // nil when off; static
}

// NewBucket returns a full bucket of shape r; if r is off, one that never
// refuses.
func NewBucket(r Rate) *Bucket {
	if r.Off() {
		return &Bucket{}
	}
	return &Bucket{l: rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)}
}

// Allow takes one token at time now, and reports whether there was one.
func (b *Bucket) Allow(now time.Time) bool { return b.l == nil || b.l.AllowN(now, 1) }
