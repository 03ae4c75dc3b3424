package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSubjectCarriesTheHashNotTheToken(t *testing.T) {
	c := &Cluster{cfg: DefaultConfig()}
	tok := wire.NewToken()
	key := router.KeyOf([]byte(tok))
	subj := c.subject(key)
	if got, ok := c.keyOf(subj); !ok || got != key {
		t.Fatalf("keyOf(%q) = %x, %v", subj, got, ok)
	}
	if len(subj) != len("relay.dev.")+64 {
		t.Fatalf("subject %q", subj)
	}
	for _, bad := range []string{"relay.dev.", "relay.dev.zz", "other.dev." + subj[len("relay.dev."):], subj + "00"} {
		if _, ok := c.keyOf(bad); ok {
			t.Errorf("keyOf(%q) accepted", bad)
		}
	}
}

// releaser answers claims as a fixed session server would.
type releaser struct {
	claim session.Claim
	err   error
	asked chan router.Key
}

func (r *releaser) Release(_ context.Context, k router.Key) (session.Claim, error) {
	r.asked <- k
	return r.claim, r.err
}

// TestClaims: a node's claim for a token goes to the node that holds it,
// and each answer comes back as sent; a token nobody holds is free at once.
func TestClaims(t *testing.T) {
	url := startNATS(t)
	key := router.KeyOf([]byte(wire.NewToken()))
	for _, tc := range []struct {
		claim session.Claim
		err   error
	}{{session.Taken, nil}, {session.Moved, nil}, {session.Free, session.ErrTakeoverLimited}} {
		holderRel := &releaser{claim: tc.claim, err: tc.err, asked: make(chan router.Key, 1)}
		claimerRel := &releaser{asked: make(chan router.Key, 1)}
		holder, claimer := start(t, url, holderRel), start(t, url, claimerRel)
		ctx := context.Background()
		if claimer.Held(ctx, key) {
			t.Fatal("held before anyone bound it")
		}
		if c, err := claimer.Claim(ctx, key); c != session.Free || err != nil {
			t.Fatalf("claim of a token nobody holds: %v %v", c, err)
		}
		holder.local.Register(key, fakeDevice{})
		holder.Bind(ctx, key)
		if !claimer.Held(ctx, key) {
			t.Fatal("another node holds the token; Held says no")
		}
		c, err := claimer.Claim(ctx, key)
		if c != tc.claim || !errors.Is(err, tc.err) {
			t.Fatalf("claim: %v %v, want %v %v", c, err, tc.claim, tc.err)
		}
		if k := <-holderRel.asked; k != key {
			t.Fatal("the holder was asked for another key")
		}
		holder.Close()
		claimer.Close()
	}
}

type fakeDevice struct{}

func (fakeDevice) Deliver(context.Context, router.Message) (router.Reply, error) {
	return router.Reply{Status: 200, Body: []byte(`{}`)}, nil
}
func (fakeDevice) Close(router.CloseReason) {}

func start(t *testing.T, url string, rel Releaser) *Cluster {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URLs = []string{url}
	c, err := New(router.New(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Start(rel)
	t.Cleanup(c.Close)
	return c
}

// startNATS runs a NATS server in the process (internal/relaytest's would
// import this package through the server).
func startNATS(t *testing.T) string {
	t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv.ClientURL()
}
