package server_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, relaytest.LeakOptions...)
}

// echo replies with who it is and what it got.
func echo(name string) device.Handler {
	return device.HandlerFunc(func(_ context.Context, m wire.Message) (int, []byte) {
		var body any // null for an empty body
		if len(m.Body) > 0 {
			body = json.RawMessage(m.Body)
		}
		b, _ := json.Marshal(map[string]any{"device": name, "mode": m.Mode, "query": m.Query, "body": body})
		return 200, b
	})
}
