package cluster

import (
	"strings"
	"testing"

	"github.com/pixelrelay/relay/internal/golist"
)

// TestClusterLinksOnlyTheRouter: the cluster is the router's mesh and
// serves other nodes through the router alone; it links no session,
// transport, webhook or server code (internal/setting, the one error of
// every configuration check, has no imports of the module). The router
// calls it through the router.Mesh interface, so that neither imports the
// other's callers.
func TestClusterLinksOnlyTheRouter(t *testing.T) {
	allowed := map[string]bool{"cluster": true, "router": true, "internal/setting": true}
	for _, p := range golist.Deps(t, ".") {
		if own, ok := strings.CutPrefix(p, golist.Module); ok && !allowed[own] {
			t.Errorf("cluster links %s", p)
		}
	}
}
