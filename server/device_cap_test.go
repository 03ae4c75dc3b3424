package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
)

// TestDeviceBoundsConcurrentMessages: the reference device grants the
// relay QUIC's largest stream limit (so that it sends no MAX_STREAMS after
// each message) and bounds the messages it handles itself: a relay that
// opens more than 256 at once, over its own max_inflight, gets the extra
// streams reset, and the device goes on serving.
func TestDeviceBoundsConcurrentMessages(t *testing.T) {
	const sent, bound = 300, 256
	e := relaytest.Start(t, func(c *server.Config) {
		relaytest.NoLimits(c)
		c.Session.MaxInflight = sent
	})
	var handling atomic.Int64
	release := make(chan struct{})
	tok := wire.NewToken()
	e.Dial(t, tok, device.HandlerFunc(func(ctx context.Context, m wire.Message) (int, []byte) {
		handling.Add(1)
		<-release
		return 200, []byte(`{"ok":true}`)
	}))

	statuses := make(chan int, sent)
	var wg sync.WaitGroup
	for range sent {
		wg.Go(func() {
			resp, err := e.HTTP.Post(e.URL("notify", tok), "application/json", strings.NewReader(`{}`))
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	// The device takes 256 and resets the rest, which fail at once.
	refused := 0
	for refused < sent-bound {
		s := <-statuses
		if s == http.StatusOK {
			t.Fatal("a message was answered 200 before any was released")
		}
		if refused == 0 {
			t.Logf("a reset message is answered %d", s)
		}
		refused++
	}
	relaytest.WaitFor(t, func() bool { return handling.Load() == bound })
	close(release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("a message the device took was answered %d", s)
		}
	}
	if got := handling.Load(); got != bound {
		t.Fatalf("the device handled %d messages; want %d", got, bound)
	}
	// The session is still good.
	if s, _ := e.Post(t, "notify", tok, `{}`); s != http.StatusOK {
		t.Fatalf("after the burst: %d", s)
	}
}
