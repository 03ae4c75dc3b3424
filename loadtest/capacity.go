package loadtest

// This file is the capacity scenario: the attack in steps, Rate, 2*Rate,
// ..., until a step breaks the SLO or the error budget, and the figures to
// plan with, those of the highest step that held.

import (
	"context"
	"fmt"
)

// ScenarioCapacity is a ramp until the SLO breaks.
const ScenarioCapacity = "capacity"

type capacity struct{}

func (capacity) info() scenarioInfo {
	return scenarioInfo{name: ScenarioCapacity, floors: true, baseline: true}
}

func (capacity) defaults(*Config) error { return nil }

func (sc capacity) run(ctx context.Context, r *runner, s *Summary) error { return r.load(ctx, s, sc) }

func (capacity) attack(ctx context.Context, a *loadRun, s *Summary) ([]*attackOutcome, *attackOutcome) {
	cfg := a.r.cfg
	runs := a.r.ramp(ctx, a.spec, a.smp, cfg.MaxSteps)
	if len(runs) == 0 {
		return nil, nil
	}
	var outs []*attackOutcome
	for _, run := range runs {
		s.Steps, outs = append(s.Steps, run.step), append(outs, run.out)
	}
	s.SLOP99MS = millis(cfg.SLO)
	b := best(runs)
	if runs[b].step.Held {
		s.MaxSustainedRate = runs[b].step.Rate
	}
	// The figures to plan with are those of the highest step that held.
	runs[b].proc.record(s)
	s.Latency, s.Throughput = runs[b].step.Latency, runs[b].step.Throughput
	if a.rc != nil {
		// The floors get one attack, not a ramp: this step's rate for
		// one step.
		a.rc.attacked(runs[b].proc.relay, runs[b].out)
		a.floorSpec.rate, a.floorSpec.duration = runs[b].step.Rate, cfg.Step
	}
	return outs, runs[b].out
}

func (capacity) pass(cfg Config, s *Summary, _ attackErrors) {
	if s.MaxSustainedRate == 0 {
		s.Failures = append(s.Failures, fmt.Sprintf("not even the first step (%.0f/s) held p99 <= %v with at most %.2f%% errors", cfg.Rate, cfg.SLO, cfg.MaxErrorRate*100))
	} else if last := s.Steps[len(s.Steps)-1]; last.Held {
		s.Warnings = append(s.Warnings, fmt.Sprintf("every step held, up to %.0f/s: the ramp ended (max steps or max rate) before the relay did; the capacity is higher", last.Rate))
	}
}

// stepRun is one capacity step: its figures, its attack and the relay's
// (or baseline's) process figures over it.
type stepRun struct {
	step Step
	out  *attackOutcome
	proc reading
}

// ramp runs capacity steps: spec at Rate, 2*Rate, ... each for Step, until
// one breaks the SLO or the error budget, or MaxRate or maxSteps.
func (r *runner) ramp(ctx context.Context, spec attackSpec, smp meter, maxSteps int) []stepRun {
	cfg := r.cfg
	name := spec.name
	var runs []stepRun
	for i := range maxSteps {
		rate := cfg.Rate * float64(i+1)
		if (cfg.MaxRate > 0 && rate > cfg.MaxRate) || ctx.Err() != nil {
			break
		}
		spec.rate, spec.duration = rate, cfg.Step
		spec.name = fmt.Sprintf("%s %.0f/s", name, rate)
		r.logf("%s step %d: %.0f webhooks/s for %v", name, i+1, rate, cfg.Step)
		m := smp.mark()
		o := runAttack(ctx, spec)
		ps := smp.since(m)
		st := Step{
			Rate:        rate,
			Requests:    o.metrics.Requests,
			Throughput:  o.throughput(),
			ErrorRate:   o.errorRate(),
			Latency:     latencyMS(&o.metrics),
			RelayCPUPct: ps.relay.CPUPercent,
			RelayRSSMB:  ps.relay.RSSMB,
		}
		st.Held = o.metrics.Requests > 0 && o.metrics.Latencies.P99 <= cfg.SLO && st.ErrorRate <= cfg.MaxErrorRate
		runs = append(runs, stepRun{st, o, ps})
		if !st.Held {
			r.logf("%s step %.0f/s did not hold: p99 %.1f ms (SLO %v), errors %.2f%%", name, rate, st.Latency.P99, cfg.SLO, st.ErrorRate*100)
			break
		}
	}
	return runs
}

// best is the highest step that held, or the first.
func best(runs []stepRun) int {
	b := 0
	for i, r := range runs {
		if r.step.Held {
			b = i
		}
	}
	return b
}
