package limit_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pixelrelay/relay/limit"
	"golang.org/x/time/rate"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func TestUnlimitedStoresNothing(t *testing.T) {
	for _, c := range []struct {
		r     rate.Limit
		burst int
	}{{0, 10}, {-1, 10}, {10, 0}, {10, -1}, {rate.Inf, 10}} {
		k := limit.New[int](limit.Rate{PerSecond: float64(c.r), Burst: c.burst})
		if !k.Unlimited() {
			t.Errorf("New(%v, %d) is limited", c.r, c.burst)
		}
		for i := range 1000 {
			if ok, d := k.Allow(i%3, t0); !ok || d != 0 {
				t.Fatalf("New(%v, %d): call %d refused (%v)", c.r, c.burst, i, d)
			}
		}
		if n := k.Len(); n != 0 {
			t.Errorf("New(%v, %d) holds %d entries", c.r, c.burst, n)
		}
	}
}

func TestBurstThenRate(t *testing.T) {
	k := limit.New[string](limit.Rate{PerSecond: 2, Burst: 3}) // 2 tokens/s, 3 at once
	for i := range 3 {
		if ok, _ := k.Allow("a", t0); !ok {
			t.Fatalf("call %d of the burst refused", i)
		}
	}
	ok, d := k.Allow("a", t0)
	if ok || d != 500*time.Millisecond {
		t.Fatalf("over the burst: ok=%v retryAfter=%v; want refused, 500ms", ok, d)
	}
	// Refusals take nothing: however often the caller retries early, the
	// next token still comes when first announced, and only one.
	for range 100 {
		k.Allow("a", t0.Add(100*time.Millisecond))
	}
	if ok, d := k.Allow("a", t0.Add(200*time.Millisecond)); ok || d != 300*time.Millisecond {
		t.Fatalf("200ms later: ok=%v retryAfter=%v; want refused, 300ms", ok, d)
	}
	if ok, _ := k.Allow("a", t0.Add(500*time.Millisecond)); !ok {
		t.Fatal("refused when the announced token is there")
	}
	if ok, d := k.Allow("a", t0.Add(500*time.Millisecond)); ok || d != 500*time.Millisecond {
		t.Fatalf("second call at 500ms: ok=%v retryAfter=%v; want refused, 500ms", ok, d)
	}
	// Other keys have their own buckets.
	if ok, _ := k.Allow("b", t0); !ok {
		t.Fatal("key b refused because of key a")
	}
}

func TestRefilledEntriesAreSwept(t *testing.T) {
	const wave = 10_000
	k := limit.New[int](limit.Rate{PerSecond: 10, Burst: 5}) // full again 500ms after the last use
	for i := range wave {
		k.Allow(i, t0)
	}
	if n := k.Len(); n != wave {
		t.Fatalf("%d entries after %d keys, want all of them (none has refilled)", n, wave)
	}
	// Nothing sweeps without inserts: the entries stay until new keys come.
	later := t0.Add(time.Second)
	for i := range wave {
		k.Allow(i, later) // existing keys: no insert, no sweep
	}
	if n := k.Len(); n != wave {
		t.Fatalf("%d entries; existing keys must not sweep", n)
	}
	// A second, larger wave of new keys makes every shard sweep at least
	// once: the first wave (used last at `later`, full from later+500ms)
	// goes, the second (just used, not full) stays.
	second := later.Add(time.Second)
	for i := range 4 * wave {
		k.Allow(wave+i, second)
	}
	if n := k.Len(); n != 4*wave {
		t.Fatalf("%d entries after the second wave, want %d: the refilled first wave should be gone", n, 4*wave)
	}
	// A swept key behaves like a new one: a full bucket.
	for i := range 5 {
		if ok, _ := k.Allow(0, second); !ok {
			t.Fatalf("swept key refused on call %d of its burst", i)
		}
	}
}

func TestFullShardLetsNewKeysThroughUntracked(t *testing.T) {
	k := limit.New[int](limit.Rate{PerSecond: 10, Burst: 1}) // a used bucket is full again after 100ms
	k.SetMaxEntries(4 * limit.ShardCount)
	var keys []int // keys of shard 0
	for i := 0; len(keys) < 6; i++ {
		if k.ShardOf(i) == 0 {
			keys = append(keys, i)
		}
	}
	for _, key := range keys[:4] {
		if ok, _ := k.Allow(key, t0); !ok {
			t.Fatalf("key %d refused on first use", key)
		}
	}
	// Shard 0 is full of buckets still refilling: new keys pass, uncounted,
	// and are counted as untracked.
	for i := range 3 {
		if ok, _ := k.Allow(keys[4], t0); !ok {
			t.Fatalf("new key in a full shard refused on call %d", i)
		}
	}
	if n, u := k.Len(), k.Untracked(); n != 4 || u != 3 {
		t.Fatalf("Len %d, Untracked %d; want 4 and 3", n, u)
	}
	// Tracked keys are still limited.
	if ok, _ := k.Allow(keys[0], t0); ok {
		t.Fatal("a tracked key passed over its burst while its shard was full")
	}
	// Once the old buckets have refilled, the next new key gets a bucket.
	later := t0.Add(100 * time.Millisecond)
	if ok, _ := k.Allow(keys[5], later); !ok {
		t.Fatal("new key refused after the shard refilled")
	}
	if ok, _ := k.Allow(keys[5], later); ok {
		t.Fatal("the new key is not tracked after the sweep")
	}
	if n, u := k.Len(), k.Untracked(); n != 1 || u != 3 {
		t.Fatalf("after the sweep: Len %d, Untracked %d; want 1 and 3", n, u)
	}
}

// TestConcurrentExactlyBurst hammers a few keys from many goroutines at one
// instant: exactly burst calls per key pass, whatever the interleaving. Run
// with -race.
func TestConcurrentExactlyBurst(t *testing.T) {
	const keys, burst, goroutines, calls = 8, 50, 16, 200
	k := limit.New[int](limit.Rate{PerSecond: 1, Burst: burst})
	var passed [keys]atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				key := (g + i) % keys
				if ok, d := k.Allow(key, t0); ok {
					passed[key].Add(1)
				} else if d <= 0 {
					t.Errorf("refused with retryAfter %v", d)
				}
			}
		})
	}
	// Readers and new keys at the same time.
	wg.Go(func() {
		for i := range calls {
			k.Allow(keys+i, t0)
			k.Len()
		}
	})
	wg.Wait()
	for key := range keys {
		if n := passed[key].Load(); n != burst {
			t.Errorf("key %d: %d calls passed, want %d", key, n, burst)
		}
	}
}
