package router_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRouterLinksNoTransport: the router knows no transport, frontend or
// message bus: it links nothing else of the relay, and neither QUIC,
// fasthttp nor NATS. Transports, the frontend and the cluster depend on
// it, never the reverse.
func TestRouterLinksNoTransport(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test lists the import graph with the go command, which is not on PATH: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/pixelrelay/relay/"
	banned := []string{"github.com/quic-go/", "github.com/valyala/fasthttp", "github.com/nats-io/", "github.com/fasthttp/", "net/http"}
	deps := strings.Fields(string(out))
	for _, p := range deps {
		if own, ok := strings.CutPrefix(p, module); ok && own != "router" {
			t.Errorf("router links %s", p)
		}
		for _, b := range banned {
			if strings.HasPrefix(p, b) {
				t.Errorf("router links %s", p)
			}
		}
	}
	if len(deps) < 5 {
		t.Fatalf("go list -deps printed %d packages; the check saw nothing", len(deps))
	}
}
