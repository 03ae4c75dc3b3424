package loadtest

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every scenario is registered once, in the order --help lists them, and
// the lists of those that take an option are the registry's.
func TestScenarioRegistry(t *testing.T) {
	want := []string{ScenarioFanin, ScenarioHot, ScenarioStorm, ScenarioChurn, ScenarioSlow, ScenarioCapacity,
		ScenarioIdle, ScenarioCluster, ScenarioSoak, ScenarioFleet, ScenarioMQTTStorm}
	if !slices.Equal(Scenarios, want) {
		t.Fatalf("Scenarios %q, want %q", Scenarios, want)
	}
	for _, name := range want {
		if sc, ok := scenarioNamed(name); !ok || sc.info().name != name {
			t.Errorf("scenarioNamed(%q): %v, %v", name, sc, ok)
		}
	}
	if _, ok := scenarioNamed("nope"); ok {
		t.Error(`scenarioNamed("nope") found one`)
	}
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"cluster", ClusterScenarios, []string{ScenarioCluster, ScenarioSoak}},
		{"floors", FloorScenarios, []string{ScenarioFanin, ScenarioStorm, ScenarioCapacity, ScenarioIdle}},
		{"baseline", BaselineScenarios, []string{ScenarioFanin, ScenarioHot, ScenarioStorm, ScenarioChurn, ScenarioSlow, ScenarioCapacity, ScenarioCluster}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s scenarios %q, want %q", c.name, c.got, c.want)
		}
	}
	// Every scenario but idle, fleet and mqttstorm, which run on their
	// own, is an attacker (load).
	for _, sc := range scenarios {
		_, ok := sc.(attacker)
		if name := sc.info().name; ok == (name == ScenarioIdle || name == ScenarioFleet || name == ScenarioMQTTStorm) {
			t.Errorf("%s: attacker %v", name, ok)
		}
	}
}

// The Makefile's comment, the README and the package comment list the
// registry's scenarios.
func TestScenarioDocs(t *testing.T) {
	for _, d := range []struct{ file, want string }{
		{"../Makefile", "# scenarios: " + strings.Join(Scenarios, " ")},
		{"../README.md", "scenarios " + Enumerate(Scenarios) + ";"},
		{"doc.go", "The scenarios (Scenarios) are " + Enumerate(Scenarios) + "."},
	} {
		b, err := os.ReadFile(d.file)
		if err != nil {
			t.Fatal(err)
		}
		// Wrapped lines and comment markers aside.
		text := string(b)
		if d.file == "doc.go" {
			text = strings.ReplaceAll(text, "\n//", "\n")
		}
		if !strings.Contains(strings.Join(strings.Fields(text), " "), d.want) {
			t.Errorf("%s does not say %q", d.file, d.want)
		}
	}
}

func TestEnumerate(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, ""}, {[]string{"a"}, "a"}, {[]string{"a", "b"}, "a and b"}, {[]string{"a", "b", "c"}, "a, b and c"},
	} {
		if got := Enumerate(c.in); got != c.want {
			t.Errorf("Enumerate(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Each scenario's own defaults, and the general ones after them.
func TestScenarioDefaults(t *testing.T) {
	check := func(name string, c Config, ok func(Config) bool) {
		t.Helper()
		c.RelayBin = "relay"
		got, err := c.withDefaults()
		if err != nil || !ok(got) {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
	check("fanin", Config{}, func(c Config) bool {
		return c.Scenario == ScenarioFanin && c.Devices == DefaultDevices && c.Rate == DefaultRate && c.Duration == DefaultDuration &&
			c.Dist == DistUniform && c.AckDelay == 0 && c.Nodes == 0 && c.IdleSettle == DefaultIdleSettle
	})
	check("hot", Config{Scenario: ScenarioHot}, func(c Config) bool { return c.Dist == DistHot && c.AckDelay == hotAckDelay })
	check("hot, zipf", Config{Scenario: ScenarioHot, Dist: DistZipf, AckDelay: time.Millisecond}, func(c Config) bool {
		return c.Dist == DistZipf && c.AckDelay == time.Millisecond
	})
	check("slow", Config{Scenario: ScenarioSlow}, func(c Config) bool { return c.AckDelay == slowAckDelay && c.AckJitter == slowAckJitter })
	check("storm", Config{Scenario: ScenarioStorm, ConnectRate: 100}, func(c Config) bool { return c.ConnectRate == 0 })
	check("cluster", Config{Scenario: ScenarioCluster}, func(c Config) bool { return c.Nodes == DefaultNodes && c.Duration == DefaultDuration })
	check("soak", Config{Scenario: ScenarioSoak, Nodes: 2, RestartEvery: 20 * time.Second}, func(c Config) bool {
		return c.Duration == 40*time.Second
	})
	check("fleet", Config{Scenario: ScenarioFleet}, func(c Config) bool {
		return c.Devices == DefaultFleetDevices && c.Rate == float64(DefaultFleetDevices)/FleetWebhookEvery.Seconds() &&
			c.Duration == DefaultFleetDuration && c.ConnectRate == DefaultFleetConnectRate && c.IdleSettle == DefaultFleetIdle
	})
	check("fleet, below 1/s", Config{Scenario: ScenarioFleet, Devices: 300}, func(c Config) bool { return c.Rate == 0.5 })
	check("mqttstorm", Config{Scenario: ScenarioMQTTStorm, WebTransportShare: 0.1, ConnectRate: 50}, func(c Config) bool {
		return c.Devices == DefaultMQTTStormClocks && c.MQTTShare == 1 && c.WebTransportShare == 0 && c.WebSocketShare == 0 && c.ConnectRate == 0
	})
	for _, c := range []Config{
		{MQTTShare: -0.1},
		{MQTTShare: 0.6, WebSocketShare: 0.5},
		{MQTTShare: 0.5, Target: "127.0.0.1:1"}, // no --mqtt-target
	} {
		c.RelayBin = "relay"
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if _, err := (Config{MQTTShare: 0.7, WebSocketShare: 0.2, WebTransportShare: 0.1, RelayBin: "relay"}).withDefaults(); err != nil {
		t.Errorf("shares adding up to 1: %v", err)
	}
	if _, err := (Config{Scenario: ScenarioFanin, Rate: 0.5, RelayBin: "relay"}).withDefaults(); err == nil {
		t.Error("fanin at 0.5 webhooks/s: no error")
	}
}
