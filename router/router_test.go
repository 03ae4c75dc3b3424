package router_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/pixelrelay/relay/router"
)

// The router starts no goroutines, but these tests do; goleak makes sure
// every one of them has ended.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDevice is a Device that records what the router does to it. It is a
// pointer type, so the router can compare sessions with ==.
type fakeDevice struct {
	id     int
	closes atomic.Int32 // number of Close calls
	reason atomic.Int32 // last CloseReason

	// release answers Release; nil lets the device be taken over.
	release func() (router.Claim, error)

	mu   sync.Mutex // guards last
	last router.Message
}

func newFake(id int) *fakeDevice { return &fakeDevice{id: id} }

// bg is the context of calls that the router passes only to a mesh.
var bg = context.Background()

func (d *fakeDevice) Deliver(ctx context.Context, m router.Message) (router.Reply, error) {
	if err := ctx.Err(); err != nil {
		return router.Reply{}, fmt.Errorf("fake device %d: %w", d.id, router.ErrGone)
	}
	d.mu.Lock()
	d.last = router.Message{Mode: m.Mode, Body: append([]byte(nil), m.Body...)}
	d.mu.Unlock()
	return router.Reply{Status: 200, Body: fmt.Appendf(nil, `{"device":%d}`, d.id)}, nil
}

func (d *fakeDevice) Close(reason router.CloseReason) {
	d.reason.Store(int32(reason))
	d.closes.Add(1)
}

func (d *fakeDevice) Release(router.Key) (router.Claim, error) {
	if d.release == nil {
		return router.Taken, nil
	}
	return d.release()
}

func (d *fakeDevice) lastMessage() router.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// token returns the i-th test token: 43 bytes, the length of 32 random bytes
// in unpadded base64url, as real tokens are.
func token(i int) []byte {
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(i))
	raw := sha256.Sum256(seed[:])
	return base64.RawURLEncoding.AppendEncode(nil, raw[:])
}

func key(i int) router.Key { return router.KeyOf(token(i)) }

func TestKeyOf(t *testing.T) {
	if n := len(token(0)); n != 43 {
		t.Fatalf("test token is %d bytes, want 43", n)
	}
	if router.KeyOf(token(1)) != router.KeyOf(token(1)) {
		t.Error("KeyOf is not deterministic")
	}
	if router.KeyOf(token(1)) == router.KeyOf(token(2)) {
		t.Error("KeyOf maps two tokens to one key")
	}
	if got, want := router.KeyOf(token(1)), router.Key(sha256.Sum256(token(1))); got != want {
		t.Errorf("KeyOf = %x, want SHA-256 of the token %x", got, want)
	}
}

func TestBindLookupUnbind(t *testing.T) {
	r := router.New()
	k, d := key(1), newFake(1)

	if got := r.Lookup(k); got != nil {
		t.Fatalf("Lookup on empty router = %v, want nil", got)
	}
	r.Bind(bg, k, d)
	if got := r.Lookup(k); got != d {
		t.Fatalf("Lookup after Bind = %v, want %v", got, d)
	}
	if got := r.Lookup(key(2)); got != nil {
		t.Errorf("Lookup of another key = %v, want nil", got)
	}
	if !r.Unbind(bg, k, d) {
		t.Fatal("Unbind of the bound device = false, want true")
	}
	if got := r.Lookup(k); got != nil {
		t.Errorf("Lookup after Unbind = %v, want nil", got)
	}
	if r.Unbind(bg, k, d) {
		t.Error("second Unbind = true, want false")
	}
	if n := d.closes.Load(); n != 0 {
		t.Errorf("router closed the device %d times, want 0", n)
	}
	if n := r.Len(); n != 0 {
		t.Errorf("Len = %d, want 0", n)
	}
}

func TestUnbindOtherDevice(t *testing.T) {
	r := router.New()
	k, d, other := key(1), newFake(1), newFake(2)
	r.Bind(bg, k, d)

	if r.Unbind(bg, k, other) {
		t.Error("Unbind with a device that is not bound = true, want false")
	}
	if got := r.Lookup(k); got != d {
		t.Errorf("Lookup = %v, want the still-bound %v", got, d)
	}
	if r.Unbind(bg, key(2), d) {
		t.Error("Unbind of a key the device never held = true, want false")
	}
	if n := r.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
}

func TestBindTakeover(t *testing.T) {
	r := router.New()
	k, first, second := key(1), newFake(1), newFake(2)

	if c, err := r.Bind(bg, k, first); c != router.Free || err != nil {
		t.Fatalf("first Bind: %v %v, want free", c, err)
	}
	if c, err := r.Bind(bg, k, second); c != router.Taken || err != nil {
		t.Fatalf("Bind over a live session: %v %v, want taken", c, err)
	}

	if n := first.closes.Load(); n != 1 {
		t.Fatalf("replaced device closed %d times, want 1", n)
	}
	if got := router.CloseReason(first.reason.Load()); got != router.Replaced {
		t.Errorf("replaced device closed with reason %d, want Replaced", got)
	}
	if n := second.closes.Load(); n != 0 {
		t.Errorf("new device closed %d times, want 0", n)
	}
	if got := r.Lookup(k); got != second {
		t.Errorf("Lookup = %v, want the newest device", got)
	}
	if n := r.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}

	// The replaced session's own cleanup must not unbind its successor.
	if r.Unbind(bg, k, first) {
		t.Error("Unbind by the replaced device = true, want false")
	}
	if got := r.Lookup(k); got != second {
		t.Errorf("Lookup after stale Unbind = %v, want %v", got, second)
	}
	if n := first.closes.Load(); n != 1 {
		t.Errorf("replaced device closed %d times in all, want 1", n)
	}
}

func TestBindSameDeviceTwice(t *testing.T) {
	r := router.New()
	k, d := key(1), newFake(1)
	r.Bind(bg, k, d)
	r.Bind(bg, k, d)

	if n := d.closes.Load(); n != 0 {
		t.Errorf("device closed %d times on re-bind, want 0", n)
	}
	if got := r.Lookup(k); got != d {
		t.Errorf("Lookup = %v, want %v", got, d)
	}
	if n := r.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
}

// TestConcurrentTakeover has many sessions log in with one token at once:
// every loser is closed exactly once, the winner never, and one key is bound.
func TestConcurrentTakeover(t *testing.T) {
	const n = 64
	r := router.New()
	k := key(1)
	devs := make([]*fakeDevice, n)
	for i := range devs {
		devs[i] = newFake(i)
	}
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Go(func() { r.Bind(bg, k, d) })
	}
	wg.Wait()

	winner, ok := r.Lookup(k).(*fakeDevice)
	if !ok {
		t.Fatalf("Lookup = %v, want one of the devices", r.Lookup(k))
	}
	for _, d := range devs {
		want := int32(1)
		if d == winner {
			want = 0
		}
		if got := d.closes.Load(); got != want {
			t.Errorf("device %d closed %d times, want %d", d.id, got, want)
		}
	}
	if got := r.Len(); got != 1 {
		t.Errorf("Len = %d, want 1", got)
	}
}

func TestRotate(t *testing.T) {
	a, b, c := key(1), key(2), key(3)

	t.Run("moves the binding", func(t *testing.T) {
		r := router.New()
		d := newFake(1)
		r.Bind(bg, a, d)
		if err := r.Rotate(bg, a, b, d); err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		if got := r.Lookup(a); got != nil {
			t.Errorf("old key still bound to %v", got)
		}
		if got := r.Lookup(b); got != d {
			t.Errorf("new key bound to %v, want %v", got, d)
		}
		if n := r.Len(); n != 1 {
			t.Errorf("Len = %d, want 1", n)
		}
		if n := d.closes.Load(); n != 0 {
			t.Errorf("device closed %d times, want 0", n)
		}
		// The session now answers to b only.
		if r.Unbind(bg, a, d) {
			t.Error("Unbind of the old key = true, want false")
		}
		if !r.Unbind(bg, b, d) {
			t.Error("Unbind of the new key = false, want true")
		}
	})

	t.Run("old key not bound", func(t *testing.T) {
		r := router.New()
		d := newFake(1)
		if err := r.Rotate(bg, a, b, d); !errors.Is(err, router.ErrNotBound) {
			t.Errorf("Rotate from an unbound key: err = %v, want ErrNotBound", err)
		}
		if got := r.Lookup(b); got != nil {
			t.Errorf("failed Rotate bound the new key to %v", got)
		}
	})

	t.Run("old key bound to another device", func(t *testing.T) {
		r := router.New()
		d, other := newFake(1), newFake(2)
		r.Bind(bg, a, other)
		if err := r.Rotate(bg, a, b, d); !errors.Is(err, router.ErrNotBound) {
			t.Errorf("err = %v, want ErrNotBound", err)
		}
		if got := r.Lookup(a); got != other {
			t.Errorf("old key bound to %v, want it left with %v", got, other)
		}
		if got := r.Lookup(b); got != nil {
			t.Errorf("new key bound to %v, want nil", got)
		}
		if n := other.closes.Load(); n != 0 {
			t.Errorf("other device closed %d times, want 0", n)
		}
	})

	t.Run("new key bound to another device", func(t *testing.T) {
		r := router.New()
		d, other := newFake(1), newFake(2)
		r.Bind(bg, a, d)
		r.Bind(bg, b, other)
		if err := r.Rotate(bg, a, b, d); !errors.Is(err, router.ErrTokenInUse) {
			t.Errorf("err = %v, want ErrTokenInUse", err)
		}
		if got := r.Lookup(a); got != d {
			t.Errorf("old key bound to %v, want it kept by %v", got, d)
		}
		if got := r.Lookup(b); got != other {
			t.Errorf("new key bound to %v, want it kept by %v", got, other)
		}
		if n := d.closes.Load() + other.closes.Load(); n != 0 {
			t.Errorf("failed Rotate closed devices %d times, want 0", n)
		}
		if n := r.Len(); n != 2 {
			t.Errorf("Len = %d, want 2", n)
		}
	})

	t.Run("same key", func(t *testing.T) {
		r := router.New()
		d := newFake(1)
		r.Bind(bg, a, d)
		if err := r.Rotate(bg, a, a, d); err != nil {
			t.Errorf("Rotate to the same key: %v", err)
		}
		if got := r.Lookup(a); got != d {
			t.Errorf("Lookup = %v, want %v", got, d)
		}
		if n := r.Len(); n != 1 {
			t.Errorf("Len = %d, want 1", n)
		}
		if err := r.Rotate(bg, c, c, d); !errors.Is(err, router.ErrNotBound) {
			t.Errorf("same-key Rotate of an unbound key: err = %v, want ErrNotBound", err)
		}
	})

	t.Run("there and back", func(t *testing.T) {
		r := router.New()
		d := newFake(1)
		r.Bind(bg, a, d)
		for i := range 10 {
			from, to := a, b
			if i%2 == 1 {
				from, to = b, a
			}
			if err := r.Rotate(bg, from, to, d); err != nil {
				t.Fatalf("rotation %d: %v", i, err)
			}
		}
		if r.Lookup(a) != d || r.Lookup(b) != nil {
			t.Errorf("after an even number of rotations: a=%v b=%v, want a bound", r.Lookup(a), r.Lookup(b))
		}
		if n := r.Len(); n != 1 {
			t.Errorf("Len = %d, want 1", n)
		}
	})
}

// shardOf restates the router's shard choice (first 8 bytes of the key,
// modulo 256) so that keyPair can find rotation pairs for both branches of
// lockPair without exporting a test hook.
func shardOf(k router.Key) uint64 { return binary.LittleEndian.Uint64(k[:8]) & 255 }

func keyPair(t *testing.T, sameShard bool) (router.Key, router.Key) {
	t.Helper()
	a := key(0)
	for i := 1; i < 100_000; i++ {
		if b := key(i); (shardOf(a) == shardOf(b)) == sameShard {
			return a, b
		}
	}
	t.Fatalf("no key pair with sameShard=%v in 100,000 tries", sameShard)
	return router.Key{}, router.Key{}
}

// TestRotateAtomic rotates one device between two keys while a checker looks
// both up. A checker cannot read both keys at one instant, so an atomic
// Rotate can still show it "both" or "neither"; which one depends on the
// rotation's direction and the order of the reads:
//
//   - reading the source key, then the destination, an atomic rotation that
//     lands between the reads shows both bound; neither is impossible
//     unless Rotate unbinds the source before it binds the destination.
//   - reading the destination, then the source, it shows neither; both is
//     impossible unless Rotate binds the destination first.
//
// The rotator counts rotations started and done, so the checker knows which
// rotations can land between its reads. It checks only samples that at most
// one rotation can have touched, whose direction it then knows.
func TestRotateAtomic(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sameShard bool
	}{{"shards=1", true}, {"shards=2", false}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := keyPair(t, tc.sameShard)
			testRotateAtomic(t, a, b)
		})
	}
}

func testRotateAtomic(t *testing.T, a, b router.Key) {
	const (
		rotations = 20_000
		checks    = 400_000
		// spacing is busy work between rotations (not a sleep), so that
		// the checker gets several samples per rotation.
		spacing = 128
	)

	r := router.New()
	d := newFake(1)
	r.Bind(bg, a, d)
	unrelated := key(-1)

	// Rotation i goes a->b when i is even. started and done count rotations
	// before and after the call: rotation i lands while started > i and
	// done <= i, and it starts only once done == i.
	var started, done atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range rotations {
			from, to := a, b
			if i%2 == 1 {
				from, to = b, a
			}
			started.Add(1)
			err := r.Rotate(bg, from, to, d)
			done.Add(1)
			if err != nil {
				t.Errorf("rotation %d: %v", i, err)
				return
			}
			for range spacing {
				r.Lookup(unrelated)
			}
		}
	})

	var checked, straddled int
	wg.Go(func() {
		for i := 0; i < checks && done.Load() < rotations; i++ {
			before := done.Load() // rotations before this one have landed
			src, dst := a, b      // where rotation `before` moves the device
			if before%2 == 1 {
				src, dst = b, a
			}
			srcFirst := i%2 == 0
			var atSrc, atDst router.Device
			if srcFirst {
				atSrc = r.Lookup(src)
				atDst = r.Lookup(dst)
			} else {
				atDst = r.Lookup(dst)
				atSrc = r.Lookup(src)
			}
			after := started.Load() // rotations from this one on had not started
			if after-before > 1 {
				continue // more than one rotation may have landed between the reads
			}
			for _, got := range []router.Device{atSrc, atDst} {
				if got != nil && got != d {
					t.Errorf("Lookup returned %v, want %v or nil", got, d)
					return
				}
			}
			checked++
			if after == before && (atSrc == nil || atDst != nil) {
				t.Errorf("no rotation running, yet source bound=%v, destination bound=%v",
					atSrc != nil, atDst != nil)
				return
			}
			switch {
			case atSrc == nil && atDst == nil:
				if srcFirst {
					t.Errorf("rotation %d: reading source then destination saw neither key bound", before)
					return
				}
				straddled++
			case atSrc != nil && atDst != nil:
				if !srcFirst {
					t.Errorf("rotation %d: reading destination then source saw both keys bound", before)
					return
				}
				straddled++
			}
		}
	})
	wg.Wait()

	// Bounded loops make no promise about interleaving; say how much was
	// actually checked so that a run that checked nothing is visible.
	t.Logf("%d samples checked, %d straddled a rotation", checked, straddled)
	if checked == 0 {
		t.Error("checker validated no sample")
	}
	if r.Lookup(a) != d || r.Lookup(b) != nil {
		t.Errorf("after %d rotations: a=%v b=%v, want a bound", rotations, r.Lookup(a), r.Lookup(b))
	}
	if n := r.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
}

// TestConcurrentDisjoint runs many sessions through their whole life at once,
// each on its own keys, so every outcome is still deterministic.
func TestConcurrentDisjoint(t *testing.T) {
	const (
		workers = 32
		rounds  = 200
		keysPer = 3
	)
	r := router.New()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var k [keysPer]router.Key
			for j := range k {
				k[j] = key(1000 + w*keysPer + j)
			}
			for i := range rounds {
				d := newFake(w*rounds + i)
				if err := concurrentRound(r, d, k); err != nil {
					t.Errorf("worker %d round %d: %v", w, i, err)
					return
				}
			}
		})
	}
	// Lookups of keys nobody registers run alongside.
	wg.Go(func() {
		for i := range workers * rounds {
			if got := r.Lookup(key(-1 - i%100)); got != nil {
				t.Errorf("Lookup of a never-bound key = %v", got)
				return
			}
		}
	})
	wg.Wait()
	if n := r.Len(); n != 0 {
		t.Errorf("Len after every session left = %d, want 0", n)
	}
}

func concurrentRound(r *router.Router, d *fakeDevice, k [3]router.Key) error {
	r.Bind(bg, k[0], d)
	if got := r.Lookup(k[0]); got != d {
		return fmt.Errorf("Lookup after Bind = %v", got)
	}
	if err := r.Rotate(bg, k[0], k[1], d); err != nil {
		return fmt.Errorf("Rotate: %w", err)
	}
	if r.Lookup(k[0]) != nil || r.Lookup(k[1]) != d {
		return errors.New("Rotate did not move the binding")
	}
	if err := r.Rotate(bg, k[0], k[2], d); !errors.Is(err, router.ErrNotBound) {
		return fmt.Errorf("Rotate from the old key: err = %v, want ErrNotBound", err)
	}
	rep, err := r.Deliver(context.Background(), k[1], router.Message{Mode: "m", Body: []byte("x")})
	if err != nil || rep.Status != 200 {
		return fmt.Errorf("Deliver = %v, %v", rep, err)
	}
	// Take over, and let the loser's stale Unbind fail.
	next := newFake(-d.id)
	r.Bind(bg, k[1], next)
	if n := d.closes.Load(); n != 1 {
		return fmt.Errorf("replaced device closed %d times, want 1", n)
	}
	if r.Unbind(bg, k[1], d) {
		return errors.New("stale Unbind succeeded")
	}
	if !r.Unbind(bg, k[1], next) {
		return errors.New("Unbind of the bound device failed")
	}
	if r.Lookup(k[1]) != nil {
		return errors.New("key still bound after Unbind")
	}
	return nil
}

func TestDeliver(t *testing.T) {
	r := router.New()
	k, d := key(1), newFake(7)
	ctx := context.Background()

	if _, err := r.Deliver(ctx, k, router.Message{Mode: "m"}); !errors.Is(err, router.ErrNoDevice) {
		t.Errorf("Deliver to an unknown key: err = %v, want ErrNoDevice", err)
	}

	r.Bind(bg, k, d)
	rep, err := r.Deliver(ctx, k, router.Message{Mode: "render", Body: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if rep.Status != 200 || string(rep.Body) != `{"device":7}` {
		t.Errorf("reply = %d %s, want the device's 200 {\"device\":7}", rep.Status, rep.Body)
	}
	if m := d.lastMessage(); m.Mode != "render" || string(m.Body) != `{"a":1}` {
		t.Errorf("device got %q %s, want the message as sent", m.Mode, m.Body)
	}

	// The device's error and the caller's context pass through unchanged.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Deliver(cctx, k, router.Message{Mode: "m"}); !errors.Is(err, router.ErrGone) {
		t.Errorf("Deliver with a cancelled context: err = %v, want the device's ErrGone", err)
	}

	r.Unbind(bg, k, d)
	if _, err := r.Deliver(ctx, k, router.Message{Mode: "m"}); !errors.Is(err, router.ErrNoDevice) {
		t.Errorf("Deliver after Unbind: err = %v, want ErrNoDevice", err)
	}
}

// Router is a Deliverer: Route and Deliver in one call.
var _ router.Deliverer = (*router.Router)(nil)

func TestEach(t *testing.T) {
	const n = 1000 // enough to land in most of the shards
	r := router.New()
	want := make(map[*fakeDevice]bool, n)
	for i := range n {
		d := newFake(i)
		r.Bind(bg, key(i), d)
		want[d] = true
	}

	seen := make(map[*fakeDevice]int, n)
	r.Each(func(d router.Device) { seen[d.(*fakeDevice)]++ })
	if len(seen) != n {
		t.Errorf("Each visited %d devices, want %d", len(seen), n)
	}
	for d, c := range seen {
		if !want[d] {
			t.Errorf("Each visited unknown device %d", d.id)
		}
		if c != 1 {
			t.Errorf("Each visited device %d %d times, want 1", d.id, c)
		}
	}

	// Each calls fn outside the locks, so fn may use the router.
	r.Each(func(d router.Device) {
		f := d.(*fakeDevice)
		r.Unbind(bg, key(f.id), f)
	})
	if got := r.Len(); got != 0 {
		t.Errorf("Len after unbinding from Each = %d, want 0", got)
	}
	calls := 0
	r.Each(func(router.Device) { calls++ })
	if calls != 0 {
		t.Errorf("Each on an empty router called fn %d times", calls)
	}
}

func TestLen(t *testing.T) {
	r := router.New()
	d1, d2, d3 := newFake(1), newFake(2), newFake(3)
	steps := []struct {
		name string
		do   func()
		want int
	}{
		{"bind d1 on k1", func() { r.Bind(bg, key(1), d1) }, 1},
		{"bind d2 on k2", func() { r.Bind(bg, key(2), d2) }, 2},
		{"bind d1 on k1 again", func() { r.Bind(bg, key(1), d1) }, 2},
		{"rotate d1 k1->k3", func() { _ = r.Rotate(bg, key(1), key(3), d1) }, 2},
		{"rotate d1 k3->k3", func() { _ = r.Rotate(bg, key(3), key(3), d1) }, 2},
		{"rotate d1 k3->k2 (in use)", func() { _ = r.Rotate(bg, key(3), key(2), d1) }, 2},
		{"rotate d1 k1->k4 (not bound)", func() { _ = r.Rotate(bg, key(1), key(4), d1) }, 2},
		{"take over k2 with d3", func() { r.Bind(bg, key(2), d3) }, 2},
		{"stale unbind d2 from k2", func() { r.Unbind(bg, key(2), d2) }, 2},
		{"unbind d1 from old k1", func() { r.Unbind(bg, key(1), d1) }, 2},
		{"unbind d1 from k3", func() { r.Unbind(bg, key(3), d1) }, 1},
		{"unbind d3 from k2", func() { r.Unbind(bg, key(2), d3) }, 0},
		{"unbind d3 from k2 again", func() { r.Unbind(bg, key(2), d3) }, 0},
	}
	for _, s := range steps {
		s.do()
		if got := r.Len(); got != s.want {
			t.Fatalf("after %s: Len = %d, want %d", s.name, got, s.want)
		}
	}
}

func TestRotateOntoOwnSecondKeyKeepsCount(t *testing.T) {
	r := router.New()
	d := newFake(1)
	k1, k2 := key(1), key(2)
	r.Bind(bg, k1, d)
	r.Bind(bg, k2, d)
	if err := r.Rotate(bg, k1, k2, d); err != nil {
		t.Fatal(err)
	}
	if r.Lookup(k1) != nil || r.Lookup(k2) != d || r.Len() != 1 {
		t.Fatalf("after rotating onto its own key: k1=%v k2=%v Len=%d; want nil, d, 1", r.Lookup(k1), r.Lookup(k2), r.Len())
	}
}

func TestNilDevice(t *testing.T) {
	r := router.New()
	k := key(1)
	if r.Unbind(bg, k, nil) || r.Len() != 0 {
		t.Fatalf("Unbind(nil) on an unbound key: Len=%d", r.Len())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Bind(nil) did not panic")
		}
	}()
	r.Bind(bg, k, nil)
}
