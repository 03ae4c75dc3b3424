package loadtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmokeMQTT runs a small mixed swarm with MQTT clocks against a relay
// process: 40 devices, 10 of them stock clocks on MQTT and 10 on
// WebSocket, 100 webhooks/s for 2 s. Every webhook must be answered 200
// and delivered exactly once, the MQTT clocks' confirmed by their screen
// (the relay's --mqtt-ack screen), and the report must split them out.
func TestSmokeMQTT(t *testing.T) {
	relay, _ := buildCommands(t)
	out := filepath.Join(t.TempDir(), "out")
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Run(ctx, Config{
		Scenario:       ScenarioFanin,
		Devices:        40,
		MQTTShare:      0.25,
		WebSocketShare: 0.25,
		Rate:           100,
		Duration:       2 * time.Second,
		Out:            out,
		RelayBin:       relay,
		Command:        "go test -C loadtest -run TestSmokeMQTT",
	}, &logs)
	t.Logf("its log:\n%s", logs.String())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pass || s.Lost+s.Duplicated+s.Misrouted != 0 || s.StatusCounts["200"] != s.Requests || s.Delivered != s.Requests || s.Requests < 150 {
		t.Errorf("pass %v (%q): %d requests, status %v, delivered %d, lost %d, duplicated %d, misrouted %d",
			s.Pass, s.Failures, s.Requests, s.StatusCounts, s.Delivered, s.Lost, s.Duplicated, s.Misrouted)
	}
	var mq *TransportStats
	for i := range s.ByTransport {
		if s.ByTransport[i].Transport == TransportMQTT {
			mq = &s.ByTransport[i]
		}
	}
	if mq == nil || mq.Devices != 10 || mq.Connected != 10 || mq.Webhooks == 0 || mq.OK != mq.Webhooks || mq.ConnectP50MS <= 0 {
		t.Fatalf("by transport: %+v; want an mqtt row of 10 clocks, all connected, every webhook 2xx", s.ByTransport)
	}
	for _, flag := range []string{"--mqtt 127.0.0.1:", "--mqtt-connect-ip-rate 0"} {
		if !strings.Contains(s.RelayCommand, flag) {
			t.Errorf("relay command %q has no %q", s.RelayCommand, flag)
		}
	}
	report, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil || !strings.Contains(string(report), "| mqtt | 10 | 10 |") {
		t.Errorf("report.md has no mqtt row in By transport (%v)", err)
	}
}

// TestSmokeMQTTMosquitto runs the comparisons with mosquitto at a small
// scale: a storm of 20 clocks at once against a relay process and a
// mosquitto, then 20 idle clocks on each.
func TestSmokeMQTTMosquitto(t *testing.T) {
	relay, _ := buildCommands(t)
	t.Run("storm", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var logs bytes.Buffer
		out := filepath.Join(t.TempDir(), "out")
		s, err := Run(ctx, Config{Scenario: ScenarioMQTTStorm, Devices: 20, RelayBin: relay, Out: out}, &logs)
		t.Logf("its log:\n%s", logs.String())
		if err != nil {
			t.Fatal(err)
		}
		st := s.MQTTStorm
		if !s.Pass || st == nil || st.Clocks != 20 || st.InFlight != 20 {
			t.Fatalf("pass %v (%q), storm %+v", s.Pass, s.Failures, st)
		}
		for _, side := range []MQTTStormSide{st.Relay, st.Mosquitto} {
			if side.Connected != 20 || side.Failed != 0 || side.PID == 0 || side.AllLoggedInS <= 0 || side.ConnectsPS <= 0 ||
				side.ConnackP50MS <= 0 || side.ConnackP99MS < side.ConnackP50MS || side.ConnackMaxMS < side.ConnackP99MS ||
				side.ReadyP50MS < side.ConnackP50MS || side.RSSMB <= 0 {
				t.Errorf("%s: %+v", side.Server, side)
			}
		}
		if st.Relay.Server != serverRelay || !strings.HasPrefix(st.Mosquitto.Server, "mosquitto version 2.") {
			t.Errorf("servers %q and %q", st.Relay.Server, st.Mosquitto.Server)
		}
		if !strings.Contains(st.RelayLimits, "off (--mqtt-connect-ip-rate 0)") {
			t.Errorf("relay limits %q", st.RelayLimits)
		}
		report, err := os.ReadFile(filepath.Join(out, ReportFile))
		if err != nil || !strings.Contains(string(report), "## MQTT login storm") || !strings.Contains(string(report), "| CONNACK p99 |") {
			t.Errorf("report.md has no MQTT login storm section (%v)", err)
		}
	})
	t.Run("idle", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var logs bytes.Buffer
		s, err := Run(ctx, Config{Scenario: ScenarioIdle, Devices: 20, MQTTShare: 1, IdleSettle: time.Second, RelayBin: relay}, &logs)
		t.Logf("its log:\n%s", logs.String())
		if err != nil {
			t.Fatal(err)
		}
		m := s.Memory
		if !s.Pass || m == nil || m.MQTTDevices != 20 || m.RSSAfterMB <= 0 {
			t.Fatalf("pass %v (%q), memory %+v", s.Pass, s.Failures, m)
		}
		mm := m.Mosquitto
		if mm == nil || mm.Connections != 20 || mm.PID == 0 || mm.RSSBeforeMB <= 0 || mm.RSSAfterMB <= 0 || mm.RelayPerDeviceKiB != m.PerDeviceKiB {
			t.Errorf("mosquitto: %+v (the relay's: %v KiB per clock)", mm, m.PerDeviceKiB)
		}
	})
}
