package wire_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pixelrelay/relay/wire"
)

// protocolDoc is the normative text whose examples TestProtocolDocExamples
// checks.
const protocolDoc = "../docs/PROTOCOL.md"

// docExample is one hex example of the protocol text: a whole frame.
type docExample struct {
	line  int    // where it starts in the text, 1-based
	text  string // as written, for failure messages
	frame []byte
}

// codeSpan matches an inline code span; it may run over a line break.
var codeSpan = regexp.MustCompile("`([^`]+)`")

// hexBytes decodes s if it is written the way the protocol text writes
// frames: two-digit hex bytes separated by spaces, with "|" between fields.
// Anything else (a 0x0178 code, a name, a partial illustration ending in
// "…") is not, and ok is false.
func hexBytes(s string) (b []byte, ok bool) {
	fields := strings.Fields(s)
	for _, f := range fields {
		if f == "|" {
			continue
		}
		if len(f) != 2 {
			return nil, false
		}
		v, err := hex.DecodeString(f)
		if err != nil {
			return nil, false
		}
		b = append(b, v...)
	}
	return b, len(b) > 0 && fields[0] != "|" && fields[len(fields)-1] != "|"
}

// hexLine decodes a line of a code block: hex bytes, then optionally two or
// more spaces and an annotation ("type LOGIN, length 55", "\"notify\"").
func hexLine(line string) ([]byte, bool) {
	head, _, _ := strings.Cut(strings.TrimSpace(line), "  ")
	return hexBytes(head)
}

// docExamples collects the hex examples of a Markdown text. An example is
// an inline code span that hexBytes decodes to at least a frame header
// (shorter hex, like a two-letter word, cannot be a frame), or a fenced code
// block whose first line hexLine decodes; then every line of the block
// must, and the block is one frame. It fails t on a block that starts as an
// example and goes on as something else.
func docExamples(t *testing.T, doc string) []docExample {
	t.Helper()
	lines := strings.Split(doc, "\n")
	prose := make([]string, len(lines)) // lines outside fenced blocks; blanks inside
	var (
		exs   []docExample
		block *docExample // the example being read, if the open block is one
		open  bool        // inside a fenced block
		first bool        // the next line is the open block's first
	)
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			if open && block != nil {
				exs = append(exs, *block)
			}
			open, first, block = !open, true, nil
			continue
		}
		if !open {
			prose[i] = line
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		b, ok := hexLine(line)
		switch {
		case first && ok:
			block = &docExample{line: i + 1}
		case block != nil && !ok:
			t.Errorf("%s:%d: a hex example goes on with a line that is not hex bytes: %q", protocolDoc, i+1, line)
		}
		first = false
		if block != nil && ok {
			block.text += line + "\n"
			block.frame = append(block.frame, b...)
		}
	}
	text := strings.Join(prose, "\n")
	for _, m := range codeSpan.FindAllStringSubmatchIndex(text, -1) {
		span := text[m[2]:m[3]]
		if b, ok := hexBytes(span); ok && len(b) >= wire.HeaderLen {
			exs = append(exs, docExample{line: 1 + strings.Count(text[:m[0]], "\n"), text: span, frame: b})
		}
	}
	return exs
}

// reencode parses a frame's payload with the wire package and encodes the
// result again, at minor version v where the layout depends on it.
func reencode(t wire.FrameType, p []byte, v uint8) ([]byte, error) {
	var (
		f   interface{ Append([]byte) []byte }
		err error
	)
	switch t {
	case wire.FrameLogin:
		f, err = wire.ParseLogin(p)
	case wire.FrameWelcome:
		f, err = wire.ParseWelcome(p)
	case wire.FrameRefuse:
		f, err = wire.ParseRefuse(p)
	case wire.FrameRotate:
		f, err = wire.ParseRotate(p)
	case wire.FrameRotated:
		// ROTATED has no fields, so no parser: its payload is empty.
		if len(p) != 0 {
			return nil, fmt.Errorf("ROTATED with a payload of %d bytes", len(p))
		}
		return wire.AppendRotated(nil), nil
	case wire.FrameGoAway:
		f, err = wire.ParseGoAway(p)
	case wire.FrameMessage:
		m, err := wire.ParseMessage(p, v)
		if err != nil {
			return nil, err
		}
		return m.AppendAt(nil, v), nil
	case wire.FrameReply:
		f, err = wire.ParseReply(p)
	default:
		return nil, fmt.Errorf("frame type %s is not in the protocol", t)
	}
	if err != nil {
		return nil, err
	}
	return f.Append(nil), nil
}

// TestProtocolDocExamples: every hex example in docs/PROTOCOL.md is one
// complete frame that the wire package decodes and encodes to the same
// bytes, and every frame type has one.
func TestProtocolDocExamples(t *testing.T) {
	doc, err := os.ReadFile(protocolDoc)
	if err != nil {
		t.Fatalf("the protocol text is part of the package's contract: %v", err)
	}
	exs := docExamples(t, string(doc))
	seen := make(map[wire.FrameType]int)
	for _, ex := range exs {
		where := fmt.Sprintf("%s:%d", protocolDoc, ex.line)
		r := bytes.NewReader(ex.frame)
		typ, p, err := wire.ReadFrame(r, wire.MaxPayload)
		if err != nil {
			t.Errorf("%s: not a whole frame (%v):\n%s", where, err, ex.text)
			continue
		}
		if r.Len() > 0 {
			t.Errorf("%s: %d bytes after the %s frame:\n%s", where, r.Len(), typ, ex.text)
			continue
		}
		// An example of a later minor version says so in its text.
		v := uint8(1)
		if strings.Contains(ex.text, "version 2") {
			v = 2
		}
		enc, err := reencode(typ, p, v)
		if err != nil {
			t.Errorf("%s: %s does not decode (%v):\n%s", where, typ, err, ex.text)
			continue
		}
		if !bytes.Equal(enc, ex.frame) {
			t.Errorf("%s: %s encodes differently:\nthe text:    % x\nthe encoder: % x", where, typ, ex.frame, enc)
			continue
		}
		seen[typ]++
	}
	// The examples as of this writing: one for each frame type, a second
	// REFUSE, a second GOAWAY and a MESSAGE at version 2. Fewer means the
	// extraction missed some.
	const want = 11
	if len(exs) < want {
		t.Errorf("found %d hex examples in %s, want at least %d", len(exs), protocolDoc, want)
	}
	for _, typ := range []wire.FrameType{wire.FrameLogin, wire.FrameWelcome, wire.FrameRefuse, wire.FrameRotate,
		wire.FrameRotated, wire.FrameGoAway, wire.FrameMessage, wire.FrameReply} {
		if seen[typ] == 0 {
			t.Errorf("no valid %s example in %s", typ, protocolDoc)
		}
	}
}

// TestDocExampleExtraction pins the extraction rule on a small text: what
// counts as an example and what does not.
func TestDocExampleExtraction(t *testing.T) {
	const doc = "Codes `0x0178` and `0x1`, a word `be`, a name `draining`, a partial field `2b 71 33 …`, " +
		"a short field `00 c8`, a frame `05 00 00 00 00` and one over a line break `11 00 00 00 04 |\n00 c8 | 7b 7d`.\n" +
		"```\n" +
		"10 00 00 00 14          type MESSAGE, length 20\n" +
		"06 6e 6f 74 69 66 79    mode_len 6, \"notify\"\n" +
		"\n" +
		"7b 22 74 65 78 74 22 3a 22 48 69 22 7d\n" +
		"```\n" +
		"```\n" +
		"Device                Relay\n" +
		"  |== LOGIN ========>|\n" +
		"```\n"
	exs := docExamples(t, doc)
	var got []string
	for _, ex := range exs {
		got = append(got, fmt.Sprintf("%d:% x", ex.line, ex.frame))
	}
	want := []string{
		"4:10 00 00 00 14 06 6e 6f 74 69 66 79 7b 22 74 65 78 74 22 3a 22 48 69 22 7d",
		"1:05 00 00 00 00",
		"1:11 00 00 00 04 00 c8 7b 7d",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("extracted\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
