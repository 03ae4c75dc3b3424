package limit_test

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pixelrelay/relay/limit"
	"golang.org/x/time/rate"
)

func key(i uint64) (k [32]byte) {
	binary.LittleEndian.PutUint64(k[:], i)
	return k
}

// BenchmarkAllow measures Allow on keys that have a bucket (passing and
// refused), on a new key each call, and in parallel over many keys. The
// baseline is one bare rate.Limiter behind its own mutex: what the shard
// map and hashing add.
func BenchmarkAllow(b *testing.B) {
	now := time.Now()
	b.Run("baseline=rate.Limiter", func(b *testing.B) {
		b.ReportAllocs()
		lim := rate.NewLimiter(1e9, 1e9)
		for b.Loop() {
			lim.AllowN(now, 1)
		}
	})
	b.Run("existing/passing", func(b *testing.B) {
		b.ReportAllocs()
		k := limit.New[[32]byte](limit.Rate{PerSecond: 1e9, Burst: 1e9})
		key := key(1)
		for b.Loop() {
			k.Allow(key, now)
		}
	})
	b.Run("existing/refused", func(b *testing.B) {
		b.ReportAllocs()
		k := limit.New[[32]byte](limit.Rate{PerSecond: 1, Burst: 1})
		key := key(1)
		k.Allow(key, now)
		for b.Loop() {
			k.Allow(key, now)
		}
	})
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		k := limit.New[[32]byte](limit.Rate{PerSecond: 20, Burst: 40})
		var i uint64
		t := now
		for b.Loop() {
			i++
			// Time moves on, so old buckets refill and sweeps keep the
			// table at its steady-state size.
			t = t.Add(time.Millisecond)
			k.Allow(key(i), t)
		}
		b.ReportMetric(float64(k.Len()), "entries")
	})
	b.Run("parallel/keys=1024", func(b *testing.B) {
		b.ReportAllocs()
		k := limit.New[[32]byte](limit.Rate{PerSecond: 1e9, Burst: 1e9})
		for i := range uint64(1024) {
			k.Allow(key(i), now)
		}
		var seq atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			i := seq.Add(1) * 7919
			for pb.Next() {
				i++
				k.Allow(key(i%1024), now)
			}
		})
	})
	b.Run("parallel/baseline=one-rate.Limiter", func(b *testing.B) {
		b.ReportAllocs()
		lim := rate.NewLimiter(1e9, 1e9)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				lim.AllowN(now, 1)
			}
		})
	})
}
