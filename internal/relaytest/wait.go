package relaytest

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// WaitTimeout bounds WaitFor: far above anything a relay on loopback should
// take, so that it only ever ends a test that is failing.
const WaitTimeout = 10 * time.Second

// WaitFor polls cond until it holds, failing the test after WaitTimeout.
// It is for states with no event to wait on (a session leaving the router,
// a file changing); where there is a channel, receive from it instead.
func WaitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %v", WaitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// LeakOptions are for goleak.VerifyTestMain in packages that run relays.
// fasthttp's worker-pool cleaner notices Stop only after its
// MaxIdleWorkerDuration sleep (10 s), and its Date-header ticker lives for
// the process; Pebble's validation workers (internal/pebbletest) have no
// way to stop: all theirs, bounded, not ours.
var LeakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreTopFunction("github.com/letsencrypt/pebble/v2/va.VAImpl.processTasks"),
}
