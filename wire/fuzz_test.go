package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzReadFrame feeds arbitrary bytes to ReadFrame and the payload to the
// parser of its frame type. Nothing may panic; a payload never exceeds the
// limit; and a frame that parses is the canonical encoding of its value:
// Append gives back the same bytes, which parse back to the same value.
//
// max is a uint32 so the fuzzer explores limits below and above MaxPayload;
// negative limits are TestKnownBugReadFrameNegativeMax's subject.
func FuzzReadFrame(f *testing.F) {
	for _, enc := range sampleFrames() {
		f.Add(enc, uint32(MaxPayload))
		f.Add(enc, uint32(len(enc)-HeaderLen)) // exactly at the limit
		f.Add(enc[:len(enc)-1], uint32(MaxPayload))
	}
	f.Add([]byte{}, uint32(0))
	f.Add([]byte{byte(FrameMessage), 0xff, 0xff, 0xff, 0xff}, uint32(0xffffffff))
	f.Add(AppendHeader(nil, FrameRotated, 3), uint32(3))
	f.Add(append(AppendHeader(nil, 0x7f, 2), 1, 2), uint32(MaxControlPayload))

	f.Fuzz(func(t *testing.T, data []byte, m uint32) {
		max := int(m)
		typ, p, err := ReadFrame(bytes.NewReader(data), max)
		if err != nil {
			if p != nil {
				t.Fatalf("ReadFrame returned %d bytes with error %v", len(p), err)
			}
			switch {
			case len(data) == 0:
				if err != io.EOF {
					t.Fatalf("empty input: %v, want io.EOF", err)
				}
			case len(data) < HeaderLen:
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("%d-byte input: %v, want io.ErrUnexpectedEOF", len(data), err)
				}
			default:
				n := int(binary.BigEndian.Uint32(data[1:HeaderLen]))
				tooLarge := n > min(max, MaxPayload)
				if tooLarge && !errors.Is(err, ErrTooLarge) || !tooLarge && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("length %d, max %d, %d payload bytes: %v", n, max, len(data)-HeaderLen, err)
				}
			}
			return
		}
		if len(p) > max || len(p) > MaxPayload {
			t.Fatalf("payload of %d bytes passed limit %d", len(p), max)
		}
		frame := data[:HeaderLen+len(p)]
		if typ != FrameType(data[0]) || !bytes.Equal(p, frame[HeaderLen:]) || int(binary.BigEndian.Uint32(data[1:])) != len(p) {
			t.Fatalf("ReadFrame(% x) = %s, % x", frame, typ, p)
		}

		v, err := parseFrame(typ, p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnexpected) {
				t.Fatalf("parse %s: error %v is neither ErrMalformed nor ErrUnexpected", typ, err)
			}
			return
		}
		enc := appendFrame(nil, v)
		if !bytes.Equal(enc, frame) {
			t.Fatalf("%s: Append of the parsed value differs:\n got % x\nwant % x", typ, enc, frame)
		}
		typ2, p2, err := ReadFrame(bytes.NewReader(enc), MaxPayload)
		if err != nil || typ2 != typ {
			t.Fatalf("%s: re-encoded frame reads back as %s, %v", typ, typ2, err)
		}
		v2, err := parseFrame(typ2, p2)
		if err != nil || !sameFrame(v, v2) {
			t.Fatalf("%s: re-encoded frame parses as %s, %v; want %s", typ, brief(v2), err, brief(v))
		}
	})
}

// FuzzCheckToken: CheckToken never panics, sorts every refusal under one
// sentinel, and accepts only tokens that follow the rules.
func FuzzCheckToken(f *testing.F) {
	for _, s := range []string{
		"", "a", NewToken(), NewToken() + NewToken() + NewToken(),
		tokenAlphabet[:MinTokenLen], tokenAlphabet[:MinTokenLen-1],
		strings.Repeat(tokenAlphabet, 2), strings.Repeat(tokenAlphabet, 2) + "A",
		strings.Repeat("ab", 15), "abcdefghijkl" + "abcdefghij", strings.Repeat("abcdefghijk", 2),
		"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MC1fQUJDREVGR+", "\xff\xfe" + NewToken(),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, tok []byte) {
		err := CheckToken(tok)
		if err != nil {
			var n int
			for _, s := range []error{ErrTokenMissing, ErrTokenMalformed, ErrTokenWeak} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("CheckToken(%q) = %v: matches %d sentinels, want 1", tok, err, n)
			}
			if (len(tok) == 0) != errors.Is(err, ErrTokenMissing) {
				t.Fatalf("CheckToken(%q) = %v", tok, err)
			}
			return
		}
		if len(tok) < MinTokenLen || len(tok) > MaxTokenLen {
			t.Fatalf("accepted a %d-character token", len(tok))
		}
		distinct := map[byte]bool{}
		for _, c := range tok {
			if strings.IndexByte(tokenAlphabet, c) < 0 {
				t.Fatalf("accepted %q with byte 0x%02x", tok, c)
			}
			distinct[c] = true
		}
		if len(distinct) < minDistinct {
			t.Fatalf("accepted %q with %d distinct characters", tok, len(distinct))
		}
	})
}
