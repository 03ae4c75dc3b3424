package loadtest

// This file is the fanin scenario, the default: many devices, webhooks at
// a steady rate spread over them.

import "context"

// ScenarioFanin is many devices, a steady rate (the default).
const ScenarioFanin = "fanin"

type fanin struct{ steadyAttack }

func (fanin) info() scenarioInfo {
	return scenarioInfo{name: ScenarioFanin, floors: true, baseline: true}
}

func (fanin) defaults(*Config) error { return nil }

func (sc fanin) run(ctx context.Context, r *runner, s *Summary) error { return r.load(ctx, s, sc) }

func (fanin) pass(cfg Config, s *Summary, e attackErrors) { errorBudget(cfg, s, e) }
