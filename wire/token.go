package wire

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// Token limits. A token is the device's only credential, so the relay refuses
// anything that cannot plausibly carry 128 random bits.
const (
	// MinTokenLen is 22 base64url characters: 132 bits when every
	// character is random.
	MinTokenLen = 22
	// MaxTokenLen bounds what the relay hashes and what a frame carries.
	MaxTokenLen = 128
	// minDistinct is the fewest distinct characters a token may use. A random
	// 22-character base64url string has ~19 on average; fewer than 12 happens
	// with probability below 1e-6 and points at a hand-made token ("aaaa...",
	// "abcabc...").
	minDistinct = 12
	// newTokenBytes is what NewToken draws from crypto/rand: 256 bits.
	newTokenBytes = 32
)

var (
	// ErrTokenMissing means no token was given at all.
	ErrTokenMissing = errors.New("wire: token missing")
	// ErrTokenMalformed means the token has the wrong length or characters.
	ErrTokenMalformed = errors.New("wire: token malformed")
	// ErrTokenWeak means the token is well-formed but too predictable.
	ErrTokenWeak = errors.New("wire: token too weak")
)

// CheckToken reports whether tok is acceptable as a device token: 22 to 128
// characters of the base64url alphabet (A-Z a-z 0-9 - _), using at least 12
// distinct characters. It does not allocate.
func CheckToken(tok []byte) error {
	if len(tok) == 0 {
		return ErrTokenMissing
	}
	if len(tok) < MinTokenLen || len(tok) > MaxTokenLen {
		return fmt.Errorf("%w: length %d outside %d..%d", ErrTokenMalformed, len(tok), MinTokenLen, MaxTokenLen)
	}
	var seen [128]bool
	distinct := 0
	for _, c := range tok {
		if !isTokenChar(c) {
			return fmt.Errorf("%w: characters outside A-Z a-z 0-9 - _", ErrTokenMalformed)
		}
		if !seen[c] {
			seen[c] = true
			distinct++
		}
	}
	if distinct < minDistinct {
		return ErrTokenWeak
	}
	return nil
}

func isTokenChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// NewToken returns a fresh token: 256 bits from crypto/rand as unpadded
// base64url (43 characters).
func NewToken() string {
	var b [newTokenBytes]byte
	rand.Read(b[:]) // never fails on supported platforms (Go 1.24+ crashes instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
