package server_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, relaytest.LeakOptions...)
}

// echo replies with who it is and what it got.
func echo(name string) device.Handler {
	return device.HandlerFunc(func(_ context.Context, mode string, body []byte) (int, []byte) {
		b, _ := json.Marshal(map[string]any{"device": name, "mode": mode, "body": json.RawMessage(body)})
		return 200, b
	})
}
