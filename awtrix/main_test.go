package awtrix

import (
	"testing"

	"go.uber.org/goleak"
)

// The forwarder's HTTP client and the fake clocks start goroutines; none may
// outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
