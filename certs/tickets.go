package certs

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"sync"
	"time"
)

// Session ticket keys rotate as crypto/tls rotates its own: a new key a
// day, each accepted for a week.
const (
	ticketKeyPeriod = 24 * time.Hour
	ticketKeysKept  = 7
)

// TicketKeys encrypts TLS session tickets with keys derived from a secret
// kept in the state directory (LoadOrCreateKey), instead of crypto/tls's
// random per-process keys: a device that reconnects to a restarted relay,
// or to another node that shares the secret, resumes its session and skips
// the certificate (the relay's signature, the device's chain check). TLS
// 1.3 resumption still runs an (EC)DH exchange (crypto/tls accepts only
// psk_dhe_ke), so the secret protects resumption, not past traffic.
//
// A key is derived per day (HKDF-SHA256 of the secret and the day's
// number); the day's key encrypts new tickets and the six before it still
// decrypt, so ticket keys rotate daily whatever the relay's uptime.
type TicketKeys struct {
	secret [KeySize]byte    // static
	now    func() time.Time // static: time.Now; tests move it

	mu   sync.Mutex
	day  int64       // the day keys holds keys for
	keys *tls.Config // holds the day's keys; only its ticket methods are used
}

// NewTicketKeys derives ticket keys from secret.
func NewTicketKeys(secret [KeySize]byte) *TicketKeys {
	return &TicketKeys{secret: secret, now: time.Now, day: -1}
}

// Install makes c encrypt and decrypt session tickets with k, in every
// clone of c made afterwards too (quic-go and the HTTPS frontend clone).
func (k *TicketKeys) Install(c *tls.Config) {
	c.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		return k.at(k.now()).EncryptTicket(cs, ss)
	}
	c.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		return k.at(k.now()).DecryptTicket(identity, cs)
	}
}

// at returns the configuration that holds the keys of now's day.
func (k *TicketKeys) at(now time.Time) *tls.Config {
	day := now.Unix() / int64(ticketKeyPeriod/time.Second)
	k.mu.Lock()
	defer k.mu.Unlock()
	if day != k.day {
		keys := make([][32]byte, ticketKeysKept)
		for i := range keys {
			keys[i] = k.derive(day - int64(i))
		}
		c := &tls.Config{}
		c.SetSessionTicketKeys(keys) // the first encrypts, all decrypt
		k.day, k.keys = day, c
	}
	return k.keys
}

// derive is the ticket key of a day.
func (k *TicketKeys) derive(day int64) (key [32]byte) {
	var info [len("relay tls session ticket key ") + 8]byte
	n := copy(info[:], "relay tls session ticket key ")
	binary.BigEndian.PutUint64(info[n:], uint64(day))
	b, err := hkdf.Key(sha256.New, k.secret[:], nil, string(info[:]), len(key))
	if err != nil {
		panic("certs: hkdf: " + err.Error()) // only for lengths over 255 hashes
	}
	copy(key[:], b)
	return key
}
