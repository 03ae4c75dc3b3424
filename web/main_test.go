package web_test

import (
	"testing"

	"github.com/pixelrelay/relay/internal/relaytest"
	"go.uber.org/goleak"
)

// The browser test runs a relay and drives chromedriver: neither may leave
// a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, relaytest.LeakOptions...)
}
