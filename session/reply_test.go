package session_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
)

// deliverOne sends one message to tok, whose raw device answers with
// reply (and FIN unless keepOpen), and returns Deliver's result and how
// long it took.
func deliverOne(t *testing.T, e *env, tok string, reply []byte, keepOpen bool, ack time.Duration) (router.Reply, time.Duration, error) {
	t.Helper()
	c, _ := e.login(tok)
	go func() {
		s := acceptMessage(t, c)
		s.Write(reply)
		if !keepOpen {
			s.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), ack)
	defer cancel()
	began := time.Now()
	rep, err := e.router.Deliver(ctx, router.KeyOf([]byte(tok)), router.Message{Mode: "notify", Body: []byte(`{}`)})
	return rep, time.Since(began), err
}

// TestReplyWithoutFIN: the relay waits for the FIN after a REPLY (§6.3); a
// device that never sends it times out like one that never answers.
func TestReplyWithoutFIN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ack = 5 * time.Second
		e := start(t, nil)
		_, took, err := deliverOne(t, e, wire.NewToken(), wire.Reply{Status: 200, Body: []byte(`{}`)}.Append(nil), true, ack)
		if !errors.Is(err, router.ErrTimeout) || took != ack {
			t.Fatalf("Deliver: %v after %v; want ErrTimeout after %v", err, took, ack)
		}
	})
}

// TestReplyBodiesAreAnyJSON: a REPLY body may be any JSON value (RFC 8259),
// passed on byte for byte; anything else is bad_reply and the session
// stays.
func TestReplyBodiesAreAnyJSON(t *testing.T) {
	for _, body := range []string{`{}`, `{"ok":true}`, `[1,2]`, `"shown"`, `42`, `true`, `null`, ` {"spaced": 1} `} {
		t.Run(body, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := start(t, nil)
				rep, _, err := deliverOne(t, e, wire.NewToken(), wire.Reply{Status: 201, Body: []byte(body)}.Append(nil), false, time.Second)
				if err != nil || rep.Status != 201 || string(rep.Body) != body {
					t.Fatalf("reply %d %q, %v; want 201 and the body as sent", rep.Status, rep.Body, err)
				}
			})
		})
	}
	for _, body := range []string{`shown`, `{"a":`, "\xff"} {
		t.Run("not JSON: "+body, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := start(t, nil)
				tok := wire.NewToken()
				_, _, err := deliverOne(t, e, tok, wire.Reply{Status: 200, Body: []byte(body)}.Append(nil), false, time.Second)
				if !errors.Is(err, router.ErrBadReply) {
					t.Fatalf("Deliver: %v, want ErrBadReply", err)
				}
				if e.router.Lookup(router.KeyOf([]byte(tok))) == nil {
					t.Fatal("a well-framed reply with a bad body ended the session")
				}
			})
		})
	}
}
