package server_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/wire"
)

// TestCloneFightIsDamped runs two agents with one copied token, both
// reconnecting as fast as they can. Newest-login-wins alone would make them
// replace each other forever; the takeover budget (default 3, then 1 a
// minute) lets the incumbent stay and refuses the other.
func TestCloneFightIsDamped(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok := wire.NewToken()
	ctx, cancel := context.WithCancel(context.Background())
	var agents sync.WaitGroup
	defer agents.Wait()
	defer cancel()
	for i := range 2 {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		a := &device.Agent{
			Addr:    e.Addr,
			Options: device.Options{TLS: e.TLS},
			Handler: echo(string(rune('a' + i))),
			Tokens:  device.FileStore{Path: path},
			Backoff: device.Backoff{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond},
		}
		agents.Go(func() { a.Run(ctx) })
	}
	refused := `relay_login_refusals_total{reason="rate_limited"}`
	relaytest.WaitFor(t, func() bool { return metric(t, e, refused) >= 20 })

	if n := metric(t, e, "relay_takeovers_total"); n > 3 {
		t.Errorf("%v takeovers in a fight; the budget allows 3", n)
	}
	// The token stays served throughout.
	if s, _ := e.Post(t, "notify", tok, `{}`); s != 200 {
		t.Fatalf("webhook during the fight: %d", s)
	}
}
