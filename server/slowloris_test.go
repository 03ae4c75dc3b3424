package server_test

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
)

// TestSlowlorisIsCutAndOthersServed holds 1,000 half-sent requests open:
// webhooks from other callers keep getting answered, and the relay closes
// every slow connection once --http-read-timeout has passed. (What the
// attack costs other callers' latency is measured by
// bench.BenchmarkWebhookUnderSlowloris, not asserted here.)
func TestSlowlorisIsCutAndOthersServed(t *testing.T) {
	const readTimeout = 2 * time.Second
	e := relaytest.Start(t, func(c *server.Config) {
		c.HTTPReadTimeout = readTimeout
		relaytest.NoLimits(c)
	})
	tok := wire.NewToken()
	e.Dial(t, tok, echo("d"))
	conns := e.Slowloris(t, 1000)
	opened := time.Now()

	for range 50 {
		if s, body := e.Post(t, "notify", tok, `{}`); s != 200 {
			t.Fatalf("webhook during the attack: %d %s", s, body)
		}
	}
	// Each slow connection is answered (408) or closed by the relay soon
	// after its read timeout; none stays open.
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(opened.Add(readTimeout + 10*time.Second))
			if _, err := io.ReadAll(c); err != nil {
				t.Errorf("slow connection not closed by the relay: %v", err)
			}
		})
	}
	wg.Wait()
}
