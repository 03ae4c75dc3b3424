package router_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/pixelrelay/relay/router"
)

// recMesh is a Mesh that answers as the test sets it and records each call
// with what the router held for the key at that moment, so that a test
// can check the order of the local and the mesh's part. The real mesh,
// over NATS, is tested in package cluster and end to end in package
// server.
type recMesh struct {
	r     *router.Router
	claim router.Claim // Claim's answer
	err   error        // Claim's error
	held  bool         // Held's answer

	mu    sync.Mutex // guards calls
	calls []string
}

func newMesh() (*router.Router, *recMesh) {
	r := router.New()
	m := &recMesh{r: r}
	r.SetMesh(m)
	return r, m
}

// record notes op on k, with "+" if k is bound here then, else "-".
func (m *recMesh) record(op string, k router.Key) {
	bound := "-"
	if m.r.Lookup(k) != nil {
		bound = "+"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, fmt.Sprintf("%s %s%s", op, name(k), bound))
}

func (m *recMesh) took() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls
	m.calls = nil
	return c
}

// name is a test key's number, as key(i) made it.
func name(k router.Key) string {
	for i := range 8 {
		if key(i) == k {
			return fmt.Sprint("k", i)
		}
	}
	return "k?"
}

func (m *recMesh) Deliver(_ context.Context, k router.Key, _ router.Message) (router.Reply, error) {
	m.record("deliver", k)
	return router.Reply{Status: 200, Body: []byte(`{"remote":true}`)}, nil
}

func (m *recMesh) Claim(_ context.Context, k router.Key) (router.Claim, error) {
	m.record("claim", k)
	return m.claim, m.err
}

func (m *recMesh) Held(_ context.Context, k router.Key) bool {
	m.record("held", k)
	return m.held
}

func (m *recMesh) Bound(_ context.Context, k router.Key)   { m.record("bound", k) }
func (m *recMesh) Unbound(_ context.Context, k router.Key) { m.record("unbound", k) }

func wantCalls(t *testing.T, m *recMesh, what string, want ...string) {
	t.Helper()
	if got := m.took(); !slices.Equal(got, want) {
		t.Errorf("%s: mesh calls %q, want %q", what, got, want)
	}
}

// TestBindClaimsThenBinds: a key not bound here is claimed from the other
// nodes before it is bound here, and the mesh hears Bound after; the claim
// comes back as the other node answered. A local takeover asks no other
// node, and is Taken.
func TestBindClaimsThenBinds(t *testing.T) {
	for _, c := range []router.Claim{router.Free, router.Taken, router.Moved} {
		r, m := newMesh()
		m.claim = c
		d := newFake(1)
		if got, err := r.Bind(bg, key(1), d); got != c || err != nil {
			t.Errorf("Bind with the other node answering %v: %v %v", c, got, err)
		}
		wantCalls(t, m, "Bind of a key bound nowhere here", "claim k1-", "bound k1+")
		if r.Lookup(key(1)) != d {
			t.Fatalf("%v: not bound", c)
		}
	}

	r, m := newMesh()
	first, second := newFake(1), newFake(2)
	r.Bind(bg, key(1), first)
	m.took()
	m.claim = router.Moved // not asked
	if got, err := r.Bind(bg, key(1), second); got != router.Taken || err != nil {
		t.Errorf("local takeover: %v %v, want taken", got, err)
	}
	wantCalls(t, m, "local takeover", "bound k1+")
	if first.closes.Load() != 1 || r.Lookup(key(1)) != second {
		t.Errorf("local takeover: first closed %d times, bound %v", first.closes.Load(), r.Lookup(key(1)))
	}
}

// TestBindTakeoverLimited: the node holding the token refuses to let it
// go; nothing is bound here and the mesh hears nothing more.
func TestBindTakeoverLimited(t *testing.T) {
	r, m := newMesh()
	m.err = fmt.Errorf("over there: %w", router.ErrTakeoverLimited)
	d := newFake(1)
	if _, err := r.Bind(bg, key(1), d); !errors.Is(err, router.ErrTakeoverLimited) {
		t.Fatalf("Bind: %v, want ErrTakeoverLimited", err)
	}
	wantCalls(t, m, "a refused claim", "claim k1-")
	if r.Lookup(key(1)) != nil || r.Len() != 0 {
		t.Fatal("bound after a refused claim")
	}
}

// TestUnbindTellsTheMesh: the mesh hears Unbound after the key is gone
// here, and only from the session that held it.
func TestUnbindTellsTheMesh(t *testing.T) {
	r, m := newMesh()
	d, other := newFake(1), newFake(2)
	r.Bind(bg, key(1), d)
	m.took()
	if r.Unbind(bg, key(1), other) {
		t.Fatal("Unbind by a session that does not hold the key")
	}
	wantCalls(t, m, "a stale Unbind")
	if !r.Unbind(bg, key(1), d) {
		t.Fatal("Unbind by the holder failed")
	}
	wantCalls(t, m, "Unbind", "unbound k1-")
}

// TestRotateThroughTheMesh: a rotation asks whether the new key is held
// elsewhere first (ErrTokenInUse if so, nothing changed), then swaps, then
// has the new key routed here and the old one nowhere before it returns.
func TestRotateThroughTheMesh(t *testing.T) {
	r, m := newMesh()
	d := newFake(1)
	r.Bind(bg, key(1), d)
	m.took()

	m.held = true
	if err := r.Rotate(bg, key(1), key(2), d); !errors.Is(err, router.ErrTokenInUse) {
		t.Fatalf("Rotate onto a key held elsewhere: %v, want ErrTokenInUse", err)
	}
	wantCalls(t, m, "Rotate onto a key held elsewhere", "held k2-")
	if r.Lookup(key(1)) != d || r.Lookup(key(2)) != nil {
		t.Fatal("a refused rotation moved the binding")
	}

	m.held = false
	if err := r.Rotate(bg, key(1), key(2), d); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, m, "Rotate", "held k2-", "bound k2+", "unbound k1-")

	if err := r.Rotate(bg, key(2), key(2), d); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, m, "Rotate onto the same key")
	if err := r.Rotate(bg, key(1), key(3), d); !errors.Is(err, router.ErrNotBound) {
		t.Fatalf("Rotate from a key not held: %v", err)
	}
	wantCalls(t, m, "Rotate from a key not held", "held k3-")
}

// TestRelease: another node's claim is answered by the Device bound here:
// Moved leaves it bound, Taken unbinds it (the mesh hears Unbound) and
// closes it as replaced, ErrTakeoverLimited leaves it; nothing bound is
// Free.
func TestRelease(t *testing.T) {
	r, m := newMesh()
	if c, err := r.Release(bg, key(1)); c != router.Free || err != nil {
		t.Fatalf("Release of a key bound nowhere: %v %v", c, err)
	}

	moving := newFake(1)
	moving.release = func() (router.Claim, error) { return router.Moved, nil }
	r.Bind(bg, key(1), moving)
	m.took()
	if c, err := r.Release(bg, key(1)); c != router.Moved || err != nil {
		t.Fatalf("Release of a moving session: %v %v", c, err)
	}
	wantCalls(t, m, "Release of a moving session")
	if r.Lookup(key(1)) != moving || moving.closes.Load() != 0 {
		t.Fatal("a moving session was unbound or closed")
	}

	stays := newFake(2)
	stays.release = func() (router.Claim, error) { return router.Free, router.ErrTakeoverLimited }
	r.Bind(bg, key(2), stays)
	m.took()
	if _, err := r.Release(bg, key(2)); !errors.Is(err, router.ErrTakeoverLimited) {
		t.Fatalf("Release of a session taken over too often: %v", err)
	}
	if r.Lookup(key(2)) != stays || stays.closes.Load() != 0 {
		t.Fatal("a session taken over too often was unbound or closed")
	}

	taken := newFake(3)
	r.Bind(bg, key(3), taken)
	m.took()
	if c, err := r.Release(bg, key(3)); c != router.Taken || err != nil {
		t.Fatalf("Release of a live session: %v %v", c, err)
	}
	wantCalls(t, m, "Release of a live session", "unbound k3-")
	if r.Lookup(key(3)) != nil || taken.closes.Load() != 1 || router.CloseReason(taken.reason.Load()) != router.Replaced {
		t.Fatalf("a taken session: bound %v, closed %d times with %d", r.Lookup(key(3)), taken.closes.Load(), taken.reason.Load())
	}
}

// TestRoute: the device bound here, else the mesh's way to the key, else
// (no mesh) nil; Deliver goes the same way.
func TestRoute(t *testing.T) {
	alone := router.New()
	if d := alone.Route(key(1)); d != nil {
		t.Fatalf("Route on a node alone, nothing bound: %v, want nil", d)
	}
	r, m := newMesh()
	d := newFake(1)
	r.Bind(bg, key(1), d)
	m.took()
	if got := r.Route(key(1)); got != router.Dest(d) {
		t.Fatalf("Route of a key bound here: %v, want the device", got)
	}
	far := r.Route(key(2))
	if far == nil {
		t.Fatal("Route of a key not bound here, with a mesh: nil")
	}
	if rep, err := far.Deliver(bg, router.Message{Mode: "notify"}); err != nil || string(rep.Body) != `{"remote":true}` {
		t.Fatalf("the mesh's Dest: %s %v", rep.Body, err)
	}
	wantCalls(t, m, "a delivery through Route", "deliver k2-")
	if rep, err := r.Deliver(bg, key(2), router.Message{Mode: "notify"}); err != nil || string(rep.Body) != `{"remote":true}` {
		t.Fatalf("Deliver of a key not bound here: %s %v", rep.Body, err)
	}
	if rep, err := r.Deliver(bg, key(1), router.Message{Mode: "notify"}); err != nil || string(rep.Body) != `{"device":1}` {
		t.Fatalf("Deliver of a key bound here: %s %v", rep.Body, err)
	}
	wantCalls(t, m, "Deliver", "deliver k2-")
}

func TestSetMeshTwice(t *testing.T) {
	r, m := newMesh()
	defer func() {
		if recover() == nil {
			t.Fatal("a second SetMesh did not panic")
		}
	}()
	r.SetMesh(m)
}
