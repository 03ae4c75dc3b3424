package loadtest

// This file is the storm scenario: every device connects at once, then
// fanin's attack.

import "context"

// ScenarioStorm is every device connecting at once.
const ScenarioStorm = "storm"

type storm struct{ steadyAttack }

func (storm) info() scenarioInfo {
	return scenarioInfo{name: ScenarioStorm, floors: true, baseline: true}
}

// defaults: no --connect-rate, whatever was asked.
func (storm) defaults(c *Config) error {
	c.ConnectRate = 0
	return nil
}

func (sc storm) run(ctx context.Context, r *runner, s *Summary) error { return r.load(ctx, s, sc) }

func (storm) pass(cfg Config, s *Summary, e attackErrors) { errorBudget(cfg, s, e) }
