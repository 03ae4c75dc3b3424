package wire

import (
	"errors"
	"strings"
	"testing"
)

const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestNewToken(t *testing.T) {
	seen := make(map[string]bool, 1000)
	for range 1000 {
		tok := NewToken()
		if len(tok) != 43 {
			t.Fatalf("NewToken() = %q: %d characters, want 43", tok, len(tok))
		}
		if err := CheckToken([]byte(tok)); err != nil {
			t.Fatalf("CheckToken(NewToken() = %q) = %v", tok, err)
		}
		if seen[tok] {
			t.Fatalf("NewToken() repeated %q", tok)
		}
		seen[tok] = true
	}
}

func TestCheckTokenAccepts(t *testing.T) {
	tests := []string{
		tokenAlphabet[:MinTokenLen],                   // shortest
		strings.Repeat(tokenAlphabet, 2),              // longest: 128
		"abcdefghijkl" + "abcdefghij",                 // 22 long, exactly 12 distinct
		"-_-_-_-_-_0123456789Az",                      // punctuation counts as characters
		"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MC1fQUJDREVGRw",  // base64url of real bytes
		strings.Repeat("a", 100) + tokenAlphabet[:11], // long runs are fine with enough variety
	}
	for _, tok := range tests {
		if err := CheckToken([]byte(tok)); err != nil {
			t.Errorf("CheckToken(%q) (%d characters) = %v, want nil", tok, len(tok), err)
		}
	}
	if len(tests[0]) != MinTokenLen || len(tests[1]) != MaxTokenLen {
		t.Fatalf("boundary tokens have lengths %d and %d", len(tests[0]), len(tests[1]))
	}
}

func TestCheckTokenRejects(t *testing.T) {
	valid := "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MC1fQUJDREVGRw"
	withByte := func(c byte) string { return valid[:10] + string([]byte{c}) + valid[11:] }
	tests := []struct {
		tok  []byte
		want error
	}{
		{nil, ErrTokenMissing},
		{[]byte{}, ErrTokenMissing},
		{[]byte("a"), ErrTokenMalformed},
		{[]byte(tokenAlphabet[:MinTokenLen-1]), ErrTokenMalformed},
		{[]byte(strings.Repeat(tokenAlphabet, 2) + "A"), ErrTokenMalformed}, // 129
		{[]byte(strings.Repeat(tokenAlphabet, 100)), ErrTokenMalformed},
		{[]byte(withByte('+')), ErrTokenMalformed}, // standard base64, not base64url
		{[]byte(withByte('/')), ErrTokenMalformed},
		{[]byte(valid + "="), ErrTokenMalformed}, // padding
		{[]byte(withByte(' ')), ErrTokenMalformed},
		{[]byte(withByte('.')), ErrTokenMalformed},
		{[]byte(withByte(0)), ErrTokenMalformed},
		{[]byte(withByte(0x7f)), ErrTokenMalformed},
		{[]byte(withByte(0x80)), ErrTokenMalformed}, // beyond the seen table
		{[]byte(withByte(0xff)), ErrTokenMalformed},
		{[]byte(strings.Repeat("\xff", 64)), ErrTokenMalformed},
		{[]byte(strings.Repeat("ab", 15)), ErrTokenWeak},
		{[]byte(strings.Repeat("a", MinTokenLen)), ErrTokenWeak},
		{[]byte(strings.Repeat("A", MaxTokenLen)), ErrTokenWeak},
		{[]byte(strings.Repeat("abcdefghijk", 2)), ErrTokenWeak}, // 11 distinct
		{[]byte(strings.Repeat("0123456789-", 11)), ErrTokenWeak},
	}
	sentinels := []error{ErrTokenMissing, ErrTokenMalformed, ErrTokenWeak}
	for _, tt := range tests {
		err := CheckToken(tt.tok)
		if !errors.Is(err, tt.want) {
			t.Errorf("CheckToken(%.40q) (%d bytes) = %v, want %v", tt.tok, len(tt.tok), err, tt.want)
			continue
		}
		for _, s := range sentinels {
			if s != tt.want && errors.Is(err, s) {
				t.Errorf("CheckToken(%.40q) = %v: also matches %v", tt.tok, err, s)
			}
		}
	}
}

func TestCheckTokenEveryByte(t *testing.T) {
	// Each of the 256 byte values in an otherwise valid token: exactly the
	// base64url alphabet passes.
	base := []byte("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MC1fQUJDREVGRw")
	for c := range 256 {
		tok := append([]byte(nil), base...)
		tok[5] = byte(c)
		err := CheckToken(tok)
		if want := strings.IndexByte(tokenAlphabet, byte(c)) >= 0; want != (err == nil) {
			t.Errorf("byte 0x%02x: CheckToken = %v", c, err)
		}
	}
}
