package transport

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pixelrelay/relay/wire"
)

// TestWebSocketDocExamples: every message in PROTOCOL §2.5's examples is
// a mux frame this package parses, naming the stream and type its comment
// says; a message written out whole carries exactly one protocol frame (an
// empty STREAM_FIN none) and has the size its label gives; the close frame's
// status is 4000 plus the code it names.
func TestWebSocketDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "### 2.5 WebSocket")
	sec, _, _ = strings.Cut(sec, "## 3. Frame format")
	if !ok {
		t.Fatal("PROTOCOL.md has no §2.5")
	}
	label := regexp.MustCompile(`^(device → relay|relay → device), (binary message of (\d+) bytes|WebSocket close frame):$`)
	type example struct {
		label string
		size  int // from the label; 0 for the close frame
		bytes []byte
		whole bool // no "…": every byte is written out
		text  string
	}
	var exs []example
	in := false
	for line := range strings.Lines(sec) {
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, "```") {
			in = !in
			continue
		}
		if !in || strings.TrimSpace(line) == "" {
			continue
		}
		if m := label.FindStringSubmatch(line); m != nil {
			size, _ := strconv.Atoi(m[3])
			exs = append(exs, example{label: line, size: size, whole: true})
			continue
		}
		if len(exs) == 0 {
			t.Fatalf("a hex line before any label: %q", line)
		}
		ex := &exs[len(exs)-1]
		hexPart, comment, _ := strings.Cut(line, "   ")
		for _, f := range strings.Fields(hexPart) {
			if f == "…" {
				ex.whole = false
				break
			}
			b, err := hex.DecodeString(f)
			if err != nil || len(b) != 1 {
				t.Fatalf("not a hex byte %q in %q", f, line)
			}
			ex.bytes = append(ex.bytes, b[0])
		}
		if ex.text == "" {
			ex.text = strings.TrimSpace(comment)
		}
	}
	if len(exs) != 6 {
		t.Fatalf("found %d examples in §2.5, want 6", len(exs))
	}
	names := map[byte]string{wsStream: "STREAM,", wsStreamFIN: "STREAM_FIN,", wsReset: "RESET,"}
	for _, ex := range exs {
		if ex.size == 0 { // the close frame
			status := int(binary.BigEndian.Uint16(ex.bytes))
			if status != WSCloseBase+0x3 || string(ex.bytes[2:]) != "replaced" || !strings.Contains(ex.text, "4003") {
				t.Errorf("%s: status %d %q", ex.label, status, ex.bytes[2:])
			}
			continue
		}
		typ, id, data, code, err := parseWSFrame(ex.bytes)
		if err != nil {
			t.Errorf("%s: %v", ex.label, err)
			continue
		}
		if want := names[typ] + " stream " + strconv.FormatUint(id, 10); !strings.HasPrefix(ex.text, want) {
			t.Errorf("%s: parses as %q, the comment says %q", ex.label, want, ex.text)
		}
		if typ == wsReset && !strings.Contains(ex.text, "code 0x"+strconv.FormatUint(uint64(code), 16)) {
			t.Errorf("%s: code %#x, the comment says %q", ex.label, code, ex.text)
		}
		if !ex.whole {
			continue
		}
		if len(ex.bytes) != ex.size {
			t.Errorf("%s: %d bytes written out", ex.label, len(ex.bytes))
		}
		if typ != wsReset && len(data) > 0 { // an empty STREAM_FIN carries none
			r := bytes.NewReader(data)
			if _, _, err := wire.ReadFrame(r, wire.MaxPayload); err != nil || r.Len() != 0 {
				t.Errorf("%s: the data is not one whole frame: %v, %d bytes left", ex.label, err, r.Len())
			}
		}
	}
}
