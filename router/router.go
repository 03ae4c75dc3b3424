// Package router is the relay's one registry of which device holds a
// token: it binds device tokens to live device sessions and routes webhook
// messages to them, on this node or, with a Mesh plugged in, on whichever
// node of a cluster holds the token.
//
// The router stores SHA-256(token), never the token. It is sharded by the
// hash and takes a per-shard read lock on lookups, so concurrent webhooks for
// different devices rarely touch the same cache line. It knows nothing of
// QUIC, WebTransport, HTTP or NATS: a session binds a Device (Bind, Unbind,
// Rotate), a frontend asks Route for the way to a token, and a cluster
// backend plugs in as a Mesh (SetMesh), which the router asks for what is
// not bound here, as derpserver asks its mesh forwarders.
package router

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
)

// Key identifies a device session: the SHA-256 of its token.
type Key [sha256.Size]byte

// KeyOf hashes a token. It does not allocate.
func KeyOf(token []byte) Key { return sha256.Sum256(token) }

// Message is one webhook on its way to a device.
type Message struct {
	Mode string
	// Query is the webhook's parameters for the device, URL-encoded; ""
	// for none. A device whose protocol version cannot carry one gets
	// ErrOutdated instead of the message.
	Query string
	Body  []byte // valid until Deliver returns
}

// Reply is a device's answer: an HTTP-like status and a JSON body.
type Reply struct {
	Status int
	Body   []byte
	// Path names the last hop to a device whose session does not carry
	// the message end to end encrypted and authenticated by the device's
	// own protocol (PathMQTTPlain, PathMQTTTLS); "" for the relay's own
	// protocol. The frontend tells the caller (Relay-Path).
	Path string
}

// Paths of Reply.
const (
	PathMQTTPlain = "mqtt-plain" // MQTT over plain TCP: readable and forgeable on the way
	PathMQTTTLS   = "mqtt-tls"   // MQTT over TLS
)

// ValidPath reports whether p is "" or one of the paths above: a Path that
// came from another node is checked before it becomes a header.
func ValidPath(p string) bool { return p == "" || p == PathMQTTPlain || p == PathMQTTTLS }

// Binding errors; the delivery outcomes are in outcome.go.
var (
	ErrTokenInUse = errors.New("router: token is bound to another session")
	ErrNotBound   = errors.New("router: session is not bound to that token")
	// ErrTakeoverLimited: the live session holding the token has been
	// taken over too often (its Device's Release says so); it stays and
	// the new login is refused, cluster-wide as on one node.
	ErrTakeoverLimited = errors.New("router: token taken over too often; the live session stays")
)

// CloseReason says why the router ends a session.
type CloseReason int

// Close reasons.
const (
	// Replaced: another session logged in with the same token (takeover).
	Replaced CloseReason = iota + 1
)

// Dest is the way to one device: the Device itself when it is bound here,
// or the mesh's way to the node that holds it.
type Dest interface {
	// Deliver hands m to the device and waits for its reply, until ctx ends.
	Deliver(ctx context.Context, m Message) (Reply, error)
}

// Device is one live device session, as a transport implements it. The
// router compares Devices with ==, so implementations are pointers.
type Device interface {
	Dest
	// Close ends the session. The router calls it outside its locks; it
	// must not block for long.
	Close(reason CloseReason)
	// Release answers another node's claim for k, the token this Device
	// is bound to (Router.Release): Moved if the session was sent away
	// and keeps k until its device leaves, Taken if it may be taken over
	// (the router then unbinds and closes it), ErrTakeoverLimited if k has
	// been taken over too often and the session stays.
	Release(k Key) (Claim, error)
}

// Deliverer routes a message to whichever device holds key. *Router is one.
type Deliverer interface {
	Deliver(ctx context.Context, key Key, m Message) (Reply, error)
}

// shardCount is a power of two so that a shard is picked with a mask.
const shardCount = 256

// Router maps token hashes to device sessions. The zero value is not usable;
// call New.
type Router struct {
	shards [shardCount]shard
	// mesh reaches the other nodes of a cluster; nil on a node alone. Set
	// by SetMesh before the router is used, read without a lock after.
	mesh Mesh
}

type shard struct {
	mu sync.RWMutex // guards m
	m  map[Key]Device
	_  [32]byte // 64 bytes a shard: neighbouring locks stay off one cache line
}

// New returns an empty router.
func New() *Router {
	r := &Router{}
	for i := range r.shards {
		r.shards[i].m = make(map[Key]Device)
	}
	return r
}

// shardIndex picks k's shard. The key is a cryptographic hash: any 8 bytes
// of it are uniform.
func shardIndex(k Key) uint64 { return binary.LittleEndian.Uint64(k[:8]) & (shardCount - 1) }

func (r *Router) shard(k Key) *shard { return &r.shards[shardIndex(k)] }

// Lookup returns the device bound to k, or nil. It does not allocate.
func (r *Router) Lookup(k Key) Device {
	s := r.shard(k)
	s.mu.RLock()
	d := s.m[k]
	s.mu.RUnlock()
	return d
}

// Route returns the way to the device holding k: the Device bound here,
// else (with a mesh) the mesh's way to the node holding k, else nil. A nil
// Dest means that no device holds k; with a mesh only Deliver can tell.
// Route allocates only for a key not bound here, with a mesh.
func (r *Router) Route(k Key) Dest {
	if d := r.Lookup(k); d != nil {
		return d
	}
	if r.mesh != nil {
		return &remote{r.mesh, k}
	}
	return nil
}

// Deliver implements Deliverer: it is Route(k).Deliver(ctx, m), with
// ErrNoDevice for a nil Dest, and allocates nothing of its own.
func (r *Router) Deliver(ctx context.Context, k Key, m Message) (Reply, error) {
	if d := r.Lookup(k); d != nil {
		return d.Deliver(ctx, m)
	}
	if r.mesh != nil {
		return r.mesh.Deliver(ctx, k, m)
	}
	return Reply{}, ErrNoDevice
}

// Bind binds k to d, and says how k was freed for it. If k is not bound
// here, the mesh (if any) first claims k from the node that holds it: on
// ErrTakeoverLimited nothing is bound and the error is returned; Bind
// returns no other error. If another session here held k, it is unbound
// and closed with Replaced: the newest login wins (takeover), so a device
// that lost its connection silently can always come back; the claim is
// then Taken. Last, the mesh routes k here from every node (or ctx ended).
func (r *Router) Bind(ctx context.Context, k Key, d Device) (Claim, error) {
	if d == nil {
		panic("router: Bind of a nil Device")
	}
	claim := Free
	if r.mesh != nil && r.Lookup(k) == nil {
		var err error
		if claim, err = r.mesh.Claim(ctx, k); err != nil {
			return claim, err
		}
	}
	s := r.shard(k)
	s.mu.Lock()
	prev := s.m[k]
	s.m[k] = d
	s.mu.Unlock()
	if prev != nil && prev != d {
		prev.Close(Replaced)
		claim = Taken
	}
	if r.mesh != nil {
		r.mesh.Bound(ctx, k)
	}
	return claim, nil
}

// Unbind unbinds k if it is bound to d, and reports whether it was; then
// the mesh stops routing k here (or ctx ended). A session that was
// replaced or rotated away therefore cannot unbind its successor.
func (r *Router) Unbind(ctx context.Context, k Key, d Device) bool {
	if d == nil {
		return false
	}
	s := r.shard(k)
	s.mu.Lock()
	ok := s.m[k] == d
	if ok {
		delete(s.m, k)
	}
	s.mu.Unlock()
	if ok && r.mesh != nil {
		r.mesh.Unbound(ctx, k)
	}
	return ok
}

// Rotate atomically rebinds d from old to new: no lookup here sees both
// keys bound, or neither. It fails with ErrNotBound if old is not bound to
// d, and with ErrTokenInUse if new is bound to another session, here or
// (the mesh says) on another node. Before it returns, the mesh routes new
// here from every node and old from none (or ctx ended), so that the
// device, told ROTATED, is reached by its new token everywhere.
func (r *Router) Rotate(ctx context.Context, old, new Key, d Device) error {
	if old == new {
		if r.Lookup(old) != d {
			return ErrNotBound
		}
		return nil
	}
	if r.mesh != nil && r.mesh.Held(ctx, new) {
		return ErrTokenInUse
	}
	if err := r.swap(old, new, d); err != nil {
		return err
	}
	if r.mesh != nil {
		r.mesh.Bound(ctx, new)
		r.mesh.Unbound(ctx, old)
	}
	return nil
}

// swap is Rotate's local part, under both shards' locks.
func (r *Router) swap(old, new Key, d Device) error {
	so, sn := r.shard(old), r.shard(new)
	unlock := r.lockPair(shardIndex(old), shardIndex(new))
	defer unlock()
	if so.m[old] != d {
		return ErrNotBound
	}
	if cur, ok := sn.m[new]; ok && cur != d {
		return ErrTokenInUse
	}
	delete(so.m, old)
	sn.m[new] = d
	return nil
}

// Release answers another node's claim for k (the mesh calls it): Free if
// nothing is bound to k here; else what the Device's Release says, and on
// Taken the Device is unbound (the mesh stops routing k here) and closed
// with Replaced.
func (r *Router) Release(ctx context.Context, k Key) (Claim, error) {
	d := r.Lookup(k)
	if d == nil {
		return Free, nil
	}
	claim, err := d.Release(k)
	if err != nil || claim != Taken {
		return claim, err
	}
	r.Unbind(ctx, k, d)
	d.Close(Replaced)
	return Taken, nil
}

// lockPair write-locks two shards in index order, so that concurrent
// rotations cannot deadlock, and returns the matching unlock.
func (r *Router) lockPair(i, j uint64) func() {
	if i == j {
		r.shards[i].mu.Lock()
		return r.shards[i].mu.Unlock
	}
	a, b := &r.shards[min(i, j)], &r.shards[max(i, j)]
	a.mu.Lock()
	b.mu.Lock()
	return func() { b.mu.Unlock(); a.mu.Unlock() }
}

// Len returns the number of keys bound here. It walks the shards: it is for
// tests and logs, not a gauge on the hot path (the session server counts
// live sessions itself).
func (r *Router) Len() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Each calls fn for every bound device, outside the router's locks. Devices
// that bind or leave meanwhile may or may not be seen.
func (r *Router) Each(fn func(Device)) {
	var batch []Device
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		batch = batch[:0]
		for _, d := range s.m {
			batch = append(batch, d)
		}
		s.mu.RUnlock()
		for _, d := range batch {
			fn(d)
		}
	}
}
