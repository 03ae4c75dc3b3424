package loadtest

import (
	"testing"

	"github.com/pixelrelay/relay/internal/relaytest"
	"go.uber.org/goleak"
)

// The swarm, the attacks and the baseline start goroutines; none may
// outlive a run.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, relaytest.LeakOptions...)
}
