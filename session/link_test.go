package session_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"
)

// slowLink is a Link whose Close takes until release: a connection being
// closed, held open so that a test can act in between.
type slowLink struct {
	closing   chan wire.Reason // Close's reason, once it is called
	release   chan struct{}
	delivered atomic.Int32
	once      sync.Once

	ls *session.LinkSession // set after Join
}

func newSlowLink() *slowLink {
	return &slowLink{closing: make(chan wire.Reason, 1), release: make(chan struct{})}
}

func (l *slowLink) Kind() transport.Kind { return transport.KindMQTT }

func (l *slowLink) Deliver(context.Context, router.Message) (router.Reply, error) {
	l.delivered.Add(1)
	return router.Reply{Status: 200, Body: []byte(`{}`)}, nil
}

func (l *slowLink) Close(r wire.Reason) {
	l.once.Do(func() {
		l.closing <- r
		<-l.release
		l.ls.End() // the connection is over
	})
}

func join(t *testing.T, srv *session.Server, l *slowLink, tok string) {
	t.Helper()
	ls, r, msg := srv.Join(context.Background(), l, []byte(tok))
	if ls == nil {
		t.Fatalf("Join: %v %s", r, msg)
	}
	l.ls = ls
}

// TestLinkTakesNoMessageOnceClosing: once the relay has decided to close a
// Link (its drain turn came, or a newer login took its token) and its
// messages in flight are answered, a message that begins is not handed to
// the Link: it would be written to a connection about to close, shown
// perhaps, and answered as lost. It is answered device_gone, unsent. (The
// close waited for the messages in flight, then closed the Link; one that
// began in between went to the closing connection.)
func TestLinkTakesNoMessageOnceClosing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(t *testing.T, srv *session.Server, tok string)
		want  wire.Reason
	}{
		{"drain", func(_ *testing.T, srv *session.Server, _ string) {
			go srv.Drain(context.Background(), time.Nanosecond) // a delay of 0: at once
		}, wire.ReasonDraining},
		{"takeover", func(t *testing.T, srv *session.Server, tok string) {
			ls, _, _ := srv.Join(context.Background(), newSlowLink(), []byte(tok))
			if ls != nil {
				t.Cleanup(ls.End)
			}
		}, wire.ReasonReplaced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := session.New(router.New(), session.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			tok := wire.NewToken()
			l := newSlowLink()
			join(t, srv, l, tok)
			defer close(l.release)
			tc.close(t, srv, tok)
			if r := <-l.closing; r != tc.want {
				t.Fatalf("Close(%v), want %v", r, tc.want)
			}
			// The Link is closing now: a message that begins is not its.
			_, err = l.ls.Deliver(context.Background(), router.Message{Mode: "notify", Body: []byte(`{}`)})
			if !errors.Is(err, router.ErrGone) || l.delivered.Load() != 0 {
				t.Fatalf("a message to a closing Link: %v, %d handed to it; want device_gone, none", err, l.delivered.Load())
			}
		})
	}
}
