package session

import (
	"context"
	"errors"
	"time"

	"github.com/pixelrelay/relay/router"
)

// A Directory makes one service of several relay nodes: a token is bound on
// one node, and webhooks for it on every other node reach that node.
// Package cluster implements it over NATS. Without one (Config.Directory
// nil) a node serves its own devices alone.
//
// The session server calls it around the router's own binding: a login
// claims its token from any other node, then binds it here; a rotation
// binds the new token, then unbinds the old one, before ROTATED. A device
// that moves after GOAWAY logs in here before it leaves the other node,
// which keeps routing its token until then: for a moment both nodes do,
// and at no instant does none. A Directory that cannot reach its peers
// degrades to this node alone rather than refuse logins: its methods then
// return at once.
type Directory interface {
	// Bind makes webhooks for key, on every node, reach this node. It
	// returns once that holds, or when ctx ends.
	Bind(ctx context.Context, key router.Key)
	// Unbind undoes Bind. It returns once no node sends key here any more,
	// or when ctx ends.
	Unbind(ctx context.Context, key router.Key)
	// Claim asks whichever other node holds key to let it go (Node.Release
	// there), and says how it went.
	Claim(ctx context.Context, key router.Key) (Claim, error)
	// Held reports whether another node holds key.
	Held(ctx context.Context, key router.Key) bool
}

// Claim is how a node answered for a token another node logged in with.
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

// ErrTakeoverLimited answers a Claim for a token whose live session has
// been taken over too often (Config.Takeovers): the incumbent stays and the
// new login is refused with rate_limited, cluster-wide as on one node.
var ErrTakeoverLimited = errors.New("session: token taken over too often; the live session stays")

// Release answers another node's Claim for key: a session here that was
// sent away moves (it keeps its binding until the device leaves), one that
// is live is taken over unless key's takeover budget is spent
// (ErrTakeoverLimited).
func (s *Server) Release(ctx context.Context, key router.Key) (Claim, error) {
	d, _ := s.router.Lookup(key).(*device)
	if d == nil {
		return Free, nil
	}
	if d.leaving.Load() {
		s.moves.Inc()
		return Moved, nil
	}
	if ok, _ := s.clones.Allow(key, time.Now()); !ok {
		return Free, ErrTakeoverLimited
	}
	if s.router.Unbind(ctx, key, d) {
		s.cfg.Directory.Unbind(ctx, key)
	}
	d.Close(router.Replaced)
	return Taken, nil
}
