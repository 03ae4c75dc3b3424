package bench

import (
	"fmt"
	"testing"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
	"github.com/valyala/fasthttp"
)

// BenchmarkClusterWebhook measures what a cluster adds to a webhook: the
// same HTTPS POST -> device -> reply, sent to a node alone (path=alone, no
// NATS at all), to the node of a two-node cluster that holds the device
// (path=local, which must cost what alone does) and to the other node,
// which forwards it as a NATS request (path=cross). NATS runs in the
// process, on loopback, like the nodes.
//
//	go test -run '^$' -bench ClusterWebhook -count 6 ./bench | tee c.txt
//	go tool benchstat -col /path c.txt
func BenchmarkClusterWebhook(b *testing.B) {
	nats := relaytest.StartNATS(b)
	holder := relaytest.Start(b, func(c *server.Config) {
		nats.Join(c)
		c.Session.MaxInflight = 1024
		relaytest.NoLimits(c)
	})
	other := holder.Sibling(b, nil)
	alone := holder.Sibling(b, func(c *server.Config) { c.Cluster.URLs = nil })
	for _, tr := range transports {
		tok := wire.NewToken()
		holder.DialWith(b, tok, device.HandlerFunc(acker), tr.opt)
		alone.DialWith(b, tok, device.HandlerFunc(acker), tr.opt)
		for _, p := range []struct {
			name string
			node *relaytest.Relay
		}{{"alone", alone}, {"local", holder}, {"cross", other}} {
			client := &fasthttp.HostClient{Addr: p.node.Addr, IsTLS: true, TLSConfig: p.node.TLS}
			for _, n := range []int{64, 1 << 10} {
				b.Run(fmt.Sprintf("transport=%s/size=%d/path=%s", tr.name, n, p.name), func(b *testing.B) {
					measure(b, n, post(client, p.node.URL("notify", tok), body(n)))
				})
			}
			client.CloseIdleConnections()
		}
	}
}
