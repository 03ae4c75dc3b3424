package router_test

import (
	"strings"
	"testing"

	"github.com/pixelrelay/relay/internal/golist"
)

// TestRouterLinksNoTransport: the router knows no transport, frontend or
// message bus: it links nothing else of the relay, and neither QUIC,
// fasthttp nor NATS. Transports, the frontend and the cluster depend on
// it, never the reverse.
func TestRouterLinksNoTransport(t *testing.T) {
	banned := []string{"github.com/quic-go/", "github.com/valyala/fasthttp", "github.com/nats-io/", "github.com/fasthttp/", "net/http"}
	for _, p := range golist.Deps(t, ".") {
		if own, ok := strings.CutPrefix(p, golist.Module); ok && own != "router" {
			t.Errorf("router links %s", p)
		}
		for _, b := range banned {
			if strings.HasPrefix(p, b) {
				t.Errorf("router links %s", p)
			}
		}
	}
}
