// Package router binds device tokens to live device sessions and delivers
// webhook messages to them.
//
// The router stores SHA-256(token), never the token. It is sharded by the
// hash and takes a per-shard read lock on lookups, so concurrent webhooks for
// different devices rarely touch the same cache line. It knows nothing of
// QUIC, WebTransport or HTTP: a transport registers a Device, a frontend
// calls Deliver through the Deliverer interface, which a cluster backend can
// also implement.
package router

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
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
}

// Delivery outcomes. Implementations of Device and Deliverer return these
// (wrapped or not) so that the frontend maps them to responses in one place.
var (
	ErrNoDevice = errors.New("router: no device for token")
	ErrBusy     = errors.New("router: device has too many messages in flight")
	ErrTimeout  = errors.New("router: device did not answer in time")
	ErrGone     = errors.New("router: device disconnected before answering")
	ErrBadReply = errors.New("router: device sent an invalid reply")
	// ErrOutdated: the device's protocol version cannot carry the message
	// (a query to a version 1 session); it was not sent.
	ErrOutdated = errors.New("router: device's protocol version cannot carry the message")
	// ErrUnavailable: the device may be connected to another node, which
	// cannot be reached now (the cluster's message bus is down).
	ErrUnavailable = errors.New("router: the other relay nodes cannot be reached")
	ErrTokenInUse  = errors.New("router: token is bound to another session")
	ErrNotBound    = errors.New("router: session is not bound to that token")
)

// CloseReason says why the router ends a session.
type CloseReason int

// Close reasons.
const (
	// Replaced: another session logged in with the same token (takeover).
	Replaced CloseReason = iota + 1
)

// Device is one live device session, as a transport implements it. The
// router compares Devices with ==, so implementations are pointers.
type Device interface {
	// Deliver hands m to the device and waits for its reply, until ctx ends.
	Deliver(ctx context.Context, m Message) (Reply, error)
	// Close ends the session. The router calls it outside its locks; it
	// must not block for long.
	Close(reason CloseReason)
}

// Deliverer routes a message to whichever device holds key. The webhook
// frontend depends only on this, so a cluster backend that reaches devices on
// other nodes can stand in for the local Router.
type Deliverer interface {
	Deliver(ctx context.Context, key Key, m Message) (Reply, error)
}

// shardCount is a power of two so that a shard is picked with a mask.
const shardCount = 256

// Router maps token hashes to device sessions. The zero value is not usable;
// call New.
type Router struct {
	shards [shardCount]shard
	n      atomic.Int64 // bound keys, for gauges
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

// Deliver implements Deliverer for devices connected to this node.
func (r *Router) Deliver(ctx context.Context, k Key, m Message) (Reply, error) {
	d := r.Lookup(k)
	if d == nil {
		return Reply{}, ErrNoDevice
	}
	return d.Deliver(ctx, m)
}

// Register binds k to d. If another session held k, it is unbound and
// closed with Replaced: the newest login wins (takeover), so a device that
// lost its connection silently can always come back.
func (r *Router) Register(k Key, d Device) {
	if d == nil {
		panic("router: Register of a nil Device")
	}
	s := r.shard(k)
	s.mu.Lock()
	prev := s.m[k]
	s.m[k] = d
	s.mu.Unlock()
	if prev == nil {
		r.n.Add(1)
	} else if prev != d {
		prev.Close(Replaced)
	}
}

// Unregister unbinds k if it is bound to d, and reports whether it was. A
// session that was replaced or rotated away therefore cannot unbind its
// successor.
func (r *Router) Unregister(k Key, d Device) bool {
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
	if ok {
		r.n.Add(-1)
	}
	return ok
}

// Rotate atomically rebinds d from old to new: no lookup sees both keys
// bound, or neither. It fails with ErrNotBound if old is not bound to d, and
// with ErrTokenInUse if new is bound to another session.
func (r *Router) Rotate(old, new Key, d Device) error {
	if old == new {
		if r.Lookup(old) != d {
			return ErrNotBound
		}
		return nil
	}
	so, sn := r.shard(old), r.shard(new)
	unlock := r.lockPair(shardIndex(old), shardIndex(new))
	defer unlock()
	if so.m[old] != d {
		return ErrNotBound
	}
	cur, ok := sn.m[new]
	if ok && cur != d {
		return ErrTokenInUse
	}
	delete(so.m, old)
	sn.m[new] = d
	if ok { // d held both keys; now it holds one
		r.n.Add(-1)
	}
	return nil
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

// Len returns the number of bound keys.
func (r *Router) Len() int { return int(r.n.Load()) }

// Each calls fn for every bound device, outside the router's locks. Devices
// that register or leave meanwhile may or may not be seen.
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
