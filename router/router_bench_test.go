package router_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pixelrelay/relay/router"
)

const benchKeys = 10_000

// table is what BenchmarkLookup compares: the Router and the obvious
// alternatives to sharding it.
// The alternatives bind as the Router does, so that the Router is a table
// itself and is measured as the relay calls it.
type table interface {
	Bind(context.Context, router.Key, router.Device) (router.Claim, error)
	Lookup(router.Key) router.Device
}

// mutexMap is the simplest correct table: one map behind one mutex.
type mutexMap struct {
	mu sync.Mutex // guards m
	m  map[router.Key]router.Device
}

func (t *mutexMap) Bind(_ context.Context, k router.Key, d router.Device) (router.Claim, error) {
	t.mu.Lock()
	t.m[k] = d
	t.mu.Unlock()
	return router.Free, nil
}

func (t *mutexMap) Lookup(k router.Key) router.Device {
	t.mu.Lock()
	d := t.m[k]
	t.mu.Unlock()
	return d
}

// rwMutexMap is mutexMap with shared read locks: one shard of the Router.
type rwMutexMap struct {
	mu sync.RWMutex // guards m
	m  map[router.Key]router.Device
}

func (t *rwMutexMap) Bind(_ context.Context, k router.Key, d router.Device) (router.Claim, error) {
	t.mu.Lock()
	t.m[k] = d
	t.mu.Unlock()
	return router.Free, nil
}

func (t *rwMutexMap) Lookup(k router.Key) router.Device {
	t.mu.RLock()
	d := t.m[k]
	t.mu.RUnlock()
	return d
}

// syncMap uses sync.Map, which is built for read-mostly maps. A Key is 32
// bytes, so passing it as an interface may cost an allocation; that cost is
// part of what is measured.
type syncMap struct{ m sync.Map }

func (t *syncMap) Bind(_ context.Context, k router.Key, d router.Device) (router.Claim, error) {
	t.m.Store(k, d)
	return router.Free, nil
}

func (t *syncMap) Lookup(k router.Key) router.Device {
	d, _ := t.m.Load(k)
	dev, _ := d.(router.Device)
	return dev
}

func benchKeySet() ([][]byte, []router.Key) {
	tokens := make([][]byte, benchKeys)
	keys := make([]router.Key, benchKeys)
	for i := range keys {
		tokens[i] = token(i)
		keys[i] = router.KeyOf(tokens[i])
	}
	return tokens, keys
}

// offset spreads the parallel goroutines over the key set so that they do not
// walk it in lockstep.
func offset(next *atomic.Int64) int { return int(next.Add(1)*7919) % benchKeys }

func BenchmarkLookup(b *testing.B) {
	_, keys := benchKeySet()
	impls := []struct {
		name string
		new  func() table
	}{
		{"sharded", func() table { return router.New() }},
		{"mutexmap", func() table { return &mutexMap{m: make(map[router.Key]router.Device)} }},
		{"rwmutexmap", func() table { return &rwMutexMap{m: make(map[router.Key]router.Device)} }},
		{"syncmap", func() table { return &syncMap{} }},
	}
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			t := impl.new()
			d := newFake(1)
			for _, k := range keys {
				t.Bind(bg, k, d)
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := offset(&next)
				for pb.Next() {
					if t.Lookup(keys[i]) == nil {
						b.Error("preloaded key not found")
						return
					}
					if i++; i == benchKeys {
						i = 0
					}
				}
			})
		})
	}
}

// BenchmarkKeyOfLookup is the router's part of a webhook: hash the 43-byte
// token from the URL, then find the device.
func BenchmarkKeyOfLookup(b *testing.B) {
	tokens, keys := benchKeySet()
	r := router.New()
	d := newFake(1)
	for _, k := range keys {
		r.Bind(bg, k, d)
	}
	var next atomic.Int64
	b.SetBytes(int64(len(tokens[0])))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := offset(&next)
		for pb.Next() {
			if r.Lookup(router.KeyOf(tokens[i])) == nil {
				b.Error("preloaded token not found")
				return
			}
			if i++; i == benchKeys {
				i = 0
			}
		}
	})
}

// BenchmarkBindUnbind is session churn: each goroutine binds and unbinds
// its own keys, so no binding takes another's over.
func BenchmarkBindUnbind(b *testing.B) {
	_, keys := benchKeySet()
	r := router.New()
	// RunParallel starts GOMAXPROCS goroutines; give each its own slice.
	per := max(benchKeys/runtime.GOMAXPROCS(0), 1)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1) - 1)
		own := keys[(g*per)%benchKeys:][:per]
		d := newFake(g)
		i := 0
		for pb.Next() {
			r.Bind(bg, own[i], d)
			if !r.Unbind(bg, own[i], d) {
				b.Error("Unbind of own key failed")
				return
			}
			if i++; i == len(own) {
				i = 0
			}
		}
	})
	if n := r.Len(); n != 0 {
		b.Errorf("Len = %d after every key was unbound", n)
	}
}
