package relaytest

import (
	"crypto/tls"
	"io"
	"sync"
	"testing"
)

// Slowloris opens n TLS connections to the relay that each send half a
// webhook request and then nothing, the classic slow-client attack. They
// are closed when the test ends.
func (r *Relay) Slowloris(tb testing.TB, n int) []*tls.Conn {
	tb.Helper()
	conns := make([]*tls.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32) // handshakes at once
	var mu sync.Mutex
	var failed error
	for i := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := tls.Dial("tcp", r.Addr, r.TLS.Clone())
			if err == nil {
				_, err = io.WriteString(c, "POST /cloud?mode=notify HTTP/1.1\r\nHost: relay\r\nContent-Length: 100\r\nX-Slow: ")
			}
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	tb.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if failed != nil {
		tb.Fatalf("relaytest: slowloris connection: %v", failed)
	}
	return conns
}
