package loadtest

// This file is the slow scenario: fanin with devices that ack slowly, so
// that many messages are in flight at once.

import (
	"context"
	"time"
)

// ScenarioSlow is devices that ack slowly.
const ScenarioSlow = "slow"

// The slow devices' default ack delay.
const (
	slowAckDelay  = 200 * time.Millisecond
	slowAckJitter = 100 * time.Millisecond
)

type slow struct{ steadyAttack }

func (slow) info() scenarioInfo { return scenarioInfo{name: ScenarioSlow, baseline: true} }

func (slow) defaults(c *Config) error {
	if c.AckDelay == 0 {
		c.AckDelay, c.AckJitter = slowAckDelay, max(c.AckJitter, slowAckJitter)
	}
	return nil
}

func (sc slow) run(ctx context.Context, r *runner, s *Summary) error { return r.load(ctx, s, sc) }

func (slow) pass(cfg Config, s *Summary, e attackErrors) { errorBudget(cfg, s, e) }
