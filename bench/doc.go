// Package bench holds end-to-end benchmarks of the relay's hot path, run in
// one process over loopback sockets: webhook -> router -> device stream ->
// reply. They report ns/op and allocs/op like any Go benchmark, plus latency
// percentiles (p50-ns, p99-ns) so that runs can be compared with benchstat.
package bench
