package loadtest

// This file is the registry of scenarios: the interface each implements,
// in a file of its own (fanin.go, hot.go, ...), and the one list of them
// that Config, the runner, the command's --help and the docs go by.

import (
	"context"
	"strings"
)

// A scenario is one kind of run (Config.Scenario): what it is, its
// defaults and how it runs. Those that attack (attacker) also say what
// they must show to pass, beyond the ledger's accounting.
type scenario interface {
	info() scenarioInfo
	// defaults fills in the scenario's own defaults where c has zeros,
	// before Config's general ones, and rejects what it cannot run.
	defaults(c *Config) error
	// run runs the scenario and fills in s.
	run(ctx context.Context, r *runner, s *Summary) error
}

// scenarioInfo is what Config, the runner and --help ask of a scenario
// besides how it runs.
type scenarioInfo struct {
	name string // its Config.Scenario
	// cluster: Config.Nodes relay nodes joined by a NATS server instead of
	// one relay.
	cluster bool
	// floors: Config.Floors applies. The scenarios that measure the
	// relay's cost per webhook, per device or per handshake take it.
	floors bool
	// baseline: Config.Baseline applies.
	baseline bool
	// subRate: Config.Rate may be below 1 webhook/s.
	subRate bool
}

// An attacker is a scenario whose run is load's: the relay (or the
// cluster), the swarm, an attack, the ledger and the accounting, the
// floors and the baseline. What the scenario adds is its attack and its
// pass criteria.
type attacker interface {
	scenario
	// attack runs the scenario's attacks on a's connected swarm and
	// fills in s's figures for them. outs is every attack, none if ctx
	// ended first; split is the one whose webhooks Summary.ByTransport
	// splits.
	attack(ctx context.Context, a *loadRun, s *Summary) (outs []*attackOutcome, split *attackOutcome)
	passer
}

// A passer has pass criteria of its own for its attacks (runner.check).
type passer interface {
	// pass adds to s the failures and warnings that the scenario's own
	// criteria find; e is the attacks' failed webhooks.
	pass(cfg Config, s *Summary, e attackErrors)
}

// scenarios is every scenario, in the order --help lists them.
var scenarios = []scenario{fanin{}, hot{}, storm{}, churn{}, slow{}, capacity{}, idle{}, cluster{}, soak{}, fleet{}, mqttStorm{}}

// The scenarios' names, from the registry: every scenario, and those that
// take the options only some do.
var (
	Scenarios         = scenarioNames(func(scenarioInfo) bool { return true })
	ClusterScenarios  = scenarioNames(func(i scenarioInfo) bool { return i.cluster })  // run Config.Nodes relay nodes
	FloorScenarios    = scenarioNames(func(i scenarioInfo) bool { return i.floors })   // take Config.Floors
	BaselineScenarios = scenarioNames(func(i scenarioInfo) bool { return i.baseline }) // take Config.Baseline
)

func scenarioNames(keep func(scenarioInfo) bool) []string {
	var names []string
	for _, sc := range scenarios {
		if i := sc.info(); keep(i) {
			names = append(names, i.name)
		}
	}
	return names
}

// scenarioNamed is the scenario called name.
func scenarioNamed(name string) (scenario, bool) {
	for _, sc := range scenarios {
		if sc.info().name == name {
			return sc, true
		}
	}
	return nil, false
}

// Enumerate lists names for a sentence: "a", "a and b", "a, b and c".
func Enumerate(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
