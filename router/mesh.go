package router

import "context"

// A Mesh makes one registry of several relay nodes: a token is bound on one
// node, and the router of every other node reaches it through the mesh.
// Package cluster implements it over NATS; it is an interface so that the
// router need not import the cluster (which calls back into the router to
// serve the other nodes' requests), as derpserver's PacketForwarder is.
//
// The router calls it around its own binding: Bind claims a token not bound
// here from the node that holds it, binds it here, then says Bound; Unbind
// says Unbound; Rotate asks Held for the new token, swaps, then says Bound
// for the new one and Unbound for the old one. A device that moves after
// GOAWAY binds its token here before it leaves the other node, which keeps
// routing it until then: for a moment both nodes do, and at no instant does
// none. A Mesh that cannot reach its peers degrades to this node alone
// rather than refuse logins: Claim is then Free, Held false, and Bound and
// Unbound return at once.
type Mesh interface {
	// Deliver sends m to the node holding k and returns its device's
	// reply; ErrNoDevice if no node holds k.
	Deliver(ctx context.Context, k Key, m Message) (Reply, error)
	// Claim asks the node holding k, if any, to let it go (its
	// Router.Release), before k is bound here, and says how it went.
	Claim(ctx context.Context, k Key) (Claim, error)
	// Held reports whether another node holds k.
	Held(ctx context.Context, k Key) bool
	// Bound says that k is bound here now. It returns once every node
	// routes k here, or when ctx ends.
	Bound(ctx context.Context, k Key)
	// Unbound says that k is no longer bound here. It returns once no
	// node routes k here any more, or when ctx ends.
	Unbound(ctx context.Context, k Key)
}

// SetMesh plugs m in: from then on the router routes what is not bound here
// through m, and tells m what it binds. Call it once, before the router is
// used (package cluster's New does, before the node serves anything): the
// router reads it without a lock.
func (r *Router) SetMesh(m Mesh) {
	if r.mesh != nil {
		panic("router: SetMesh called twice")
	}
	r.mesh = m
}

// remote is Route's way to a token bound on another node.
type remote struct {
	mesh Mesh
	k    Key
}

func (d *remote) Deliver(ctx context.Context, m Message) (Reply, error) {
	return d.mesh.Deliver(ctx, d.k, m)
}

// Claim is how a node answered for a token another node binds.
type Claim uint8

const (
	// Free: the node did not hold the token.
	Free Claim = iota
	// Taken: its session was closed as replaced (a takeover).
	Taken
	// Moved: its session had been sent away with GOAWAY and is moving
	// here: no takeover; that node routes the token until the device
	// leaves it, which it does once logged in here (make-before-break).
	Moved
)

func (c Claim) String() string {
	switch c {
	case Free:
		return "free"
	case Taken:
		return "taken"
	case Moved:
		return "moved"
	}
	return "claim(?)"
}
