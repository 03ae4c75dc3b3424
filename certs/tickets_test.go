package certs

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs/trust"
)

// TestTicketKeys: a session ticket from one relay resumes at another
// process with the same secret (a restart, another node), not with another
// secret, and still six days later but not eight, as keys rotate daily.
func TestTicketKeys(t *testing.T) {
	dev, err := LoadOrCreateDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pool, err := trust.CAPool(dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	secret, other := [KeySize]byte{1}, [KeySize]byte{2}
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	keysAt := func(s [KeySize]byte, at time.Time) *TicketKeys {
		k := NewTicketKeys(s)
		k.now = func() time.Time { return at }
		return k
	}
	server := func(k *TicketKeys) *tls.Config {
		c := dev.TLS.Clone()
		k.Install(c)
		return c
	}
	for _, tc := range []struct {
		name   string
		later  *TicketKeys
		resume bool
	}{
		{"same secret, restarted", keysAt(secret, t0), true},
		{"same secret, six days on", keysAt(secret, t0.Add(6*24*time.Hour)), true},
		{"same secret, eight days on", keysAt(secret, t0.Add(8*24*time.Hour)), false},
		{"another secret", keysAt(other, t0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := &tls.Config{RootCAs: pool, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			if handshake(t, server(keysAt(secret, t0)), client) {
				t.Fatal("the first handshake resumed")
			}
			// The ticket is valid for its lifetime by crypto/tls's clock
			// too: only the key rotation moves here.
			if got := handshake(t, server(tc.later), client); got != tc.resume {
				t.Fatalf("resumed %v; want %v", got, tc.resume)
			}
		})
	}
}

// handshake runs one TLS connection over loopback and reports whether it
// resumed a session; the client reads a byte so that it takes the
// server's ticket.
func handshake(t *testing.T, server, client *tls.Config) bool {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte{1})
		c.Read(make([]byte, 1)) // until the client closes
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().DidResume
}
