package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeviceLinksNoRelayCode: the device binary is built from the protocol
// (wire), the connection adapters both sides share (transport), the device
// side (device, awtrix) and certificate loading, and nothing of the relay:
// not its router, sessions, limits, webhook frontend, node or their
// libraries. Firmware-sized agents and the team's layering depend on it.
func TestDeviceLinksNoRelayCode(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test lists the import graph with the go command, which is not on PATH: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/pixelrelay/relay/"
	allowed := map[string]bool{
		"awtrix": true, "certs/trust": true, "device": true, "transport": true, "wire": true,
		"internal/flagenv": true, "internal/buildinfo": true, "cmd/device": true,
	}
	relayOnly := []string{"github.com/valyala/fasthttp", "github.com/VictoriaMetrics/metrics", "golang.org/x/time/rate"}
	deps := strings.Fields(string(out))
	for _, p := range deps {
		if own, ok := strings.CutPrefix(p, module); ok && !allowed[own] {
			t.Errorf("cmd/device links %s", p)
		}
		for _, r := range relayOnly {
			if p == r || strings.HasPrefix(p, r+"/") {
				t.Errorf("cmd/device links %s, a relay-side library", p)
			}
		}
	}
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed %d packages; the check saw nothing", len(deps))
	}
}
