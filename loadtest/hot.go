package loadtest

// This file is the hot scenario: every webhook to one device, from many
// callers at once, so that its in-flight cap fills and the relay sheds
// the rest (backpressure).

import (
	"context"
	"fmt"
	"time"
)

// ScenarioHot is one device, many callers: backpressure.
const ScenarioHot = "hot"

// hotAckDelay is how slowly the hot device acks by default, so that its
// in-flight cap fills.
const hotAckDelay = 50 * time.Millisecond

type hot struct{ steadyAttack }

func (hot) info() scenarioInfo { return scenarioInfo{name: ScenarioHot, baseline: true} }

func (hot) defaults(c *Config) error {
	if c.Dist == "" {
		c.Dist = DistHot
	}
	if c.AckDelay == 0 {
		c.AckDelay = hotAckDelay
	}
	return nil
}

func (sc hot) run(ctx context.Context, r *runner, s *Summary) error { return r.load(ctx, s, sc) }

// pass: backpressure means fast 503s; anything else (timeouts, the
// generator giving up) means the relay queued instead of shedding.
func (hot) pass(_ Config, s *Summary, e attackErrors) {
	if n := failedOtherThan(s, "503"); n > 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("%d webhooks to the hot device failed other than with 503 (%s)", n, e.samples))
	}
	if s.StatusCounts["503"] == 0 {
		s.Warnings = append(s.Warnings, "no 503s: the rate did not reach the hot device's in-flight cap, backpressure was not exercised (raise --rate or --ack-delay)")
	}
}
