package cluster

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClusterLinksOnlyTheRouter: the cluster is the router's mesh and
// serves other nodes through the router alone; it links no session,
// transport, webhook or server code (internal/setting, the one error of
// every configuration check, has no imports of the module). The router calls it through the
// router.Mesh interface, so that neither imports the other's callers.
func TestClusterLinksOnlyTheRouter(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test lists the import graph with the go command, which is not on PATH: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/pixelrelay/relay/"
	allowed := map[string]bool{"cluster": true, "router": true, "internal/setting": true}
	deps := strings.Fields(string(out))
	for _, p := range deps {
		if own, ok := strings.CutPrefix(p, module); ok && !allowed[own] {
			t.Errorf("cluster links %s", p)
		}
	}
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed %d packages; the check saw nothing", len(deps))
	}
}
