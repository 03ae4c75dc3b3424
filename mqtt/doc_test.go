package mqtt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/pixelrelay/relay/router"
	"github.com/pixelrelay/relay/wire"
)

// protocolDoc is the normative text; §10 describes this package.
const protocolDoc = "../docs/PROTOCOL.md"

// docPacket is one example packet of PROTOCOL §10: a fenced block's label
// line ("clock → relay, CONNECT, 80 bytes:") and the hex lines below it,
// each with a comment that names the field its bytes are.
type docPacket struct {
	line   int    // of the label, 1-based
	dir    string // "clock → relay" or "relay → clock"
	name   string // the packet type, as packetName gives it
	size   int    // the label's byte count
	raw    []byte
	fields []docField
}

// docField is one commented line of an example, with the lines that go on
// with it: a comment "(the topic goes on)", or a bare quoted string (a
// token's characters, as §4.1 writes them), continues the field above.
type docField struct {
	line    int
	comment string
	raw     []byte
	chunks  []string // the bare quoted strings of its lines, in order
}

var (
	docLabel     = regexp.MustCompile(`^(clock → relay|relay → clock), ([A-Z]+), (\d+) bytes:$`)
	docGoesOn    = regexp.MustCompile(`^\(.* goes on\)$`)
	docChunk     = regexp.MustCompile(`^"([^"]*)"$`)
	docCommentAt = regexp.MustCompile(` {3,}`)
)

// mqttSection returns §10 of the protocol text and the line it starts on.
func mqttSection(t *testing.T) (string, int) {
	t.Helper()
	doc, err := os.ReadFile(protocolDoc)
	if err != nil {
		t.Fatalf("the protocol text is part of the package's contract: %v", err)
	}
	const head = "\n## 10. MQTT devices\n"
	i := bytes.Index(doc, []byte(head))
	if i < 0 {
		t.Fatalf("%s has no %q", protocolDoc, strings.TrimSpace(head))
	}
	sec := string(doc[i+1:])
	if j := strings.Index(sec[len(head):], "\n## "); j >= 0 {
		sec = sec[:len(head)+j+1]
	}
	return sec, 2 + bytes.Count(doc[:i], []byte("\n"))
}

// mqttDocExamples parses every fenced block of §10. Each block holds
// examples only: a label, then its hex lines, then maybe another label. A
// line that is neither fails t.
func mqttDocExamples(t *testing.T) []docPacket {
	t.Helper()
	sec, first := mqttSection(t)
	var (
		exs []docPacket
		in  bool
	)
	for i, line := range strings.Split(sec, "\n") {
		n := first + i
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			in = !in
			continue
		}
		if !in || strings.TrimSpace(line) == "" {
			continue
		}
		if m := docLabel.FindStringSubmatch(line); m != nil {
			size, _ := strconv.Atoi(m[3])
			exs = append(exs, docPacket{line: n, dir: m[1], name: m[2], size: size})
			continue
		}
		if len(exs) == 0 {
			t.Errorf("%s:%d: a block of §10 that does not start with a label (\"clock → relay, NAME, N bytes:\"): %q", protocolDoc, n, line)
			continue
		}
		ex := &exs[len(exs)-1]
		hexPart, comment := line, ""
		if loc := docCommentAt.FindStringIndex(line); loc != nil {
			hexPart, comment = line[:loc[0]], strings.TrimSpace(line[loc[1]:])
		}
		var b []byte
		for _, f := range strings.Fields(hexPart) {
			v, err := hex.DecodeString(f)
			if err != nil || len(v) != 1 {
				t.Errorf("%s:%d: %q is not a hex byte: %q", protocolDoc, n, f, line)
				continue
			}
			b = append(b, v...)
		}
		if len(b) == 0 || comment == "" {
			t.Errorf("%s:%d: want hex bytes, three spaces and a comment: %q", protocolDoc, n, line)
			continue
		}
		ex.raw = append(ex.raw, b...)
		chunk := docChunk.FindStringSubmatch(comment)
		switch {
		case chunk != nil || docGoesOn.MatchString(comment):
			if len(ex.fields) == 0 {
				t.Errorf("%s:%d: a line goes on with no field above it", protocolDoc, n)
				continue
			}
			f := &ex.fields[len(ex.fields)-1]
			f.raw = append(f.raw, b...)
			if chunk != nil {
				if string(b) != chunk[1] {
					t.Errorf("%s:%d: the bytes are %q, the comment says %q", protocolDoc, n, b, chunk[1])
				}
				f.chunks = append(f.chunks, chunk[1])
			}
		default:
			ex.fields = append(ex.fields, docField{line: n, comment: comment, raw: b})
		}
	}
	return exs
}

// decode reads ex as its receiver would: a packet to the relay with the
// relay's own reader, a packet to the clock with paho's (a client's; the
// relay's reader takes no SUBACK, which no client sends). It must be one
// whole packet and nothing more.
func (ex docPacket) decode() (packets.ControlPacket, error) {
	r := bytes.NewReader(ex.raw)
	br := bufio.NewReader(r)
	var (
		cp  packets.ControlPacket
		err error
	)
	if ex.dir == "clock → relay" {
		cp, err = readPacket(br, DefaultMaxPacket)
	} else {
		cp, err = packets.ReadPacket(br)
	}
	if err != nil {
		return nil, err
	}
	if left := br.Buffered() + r.Len(); left > 0 {
		return nil, fmt.Errorf("%d bytes after the %s", left, packetName(ex.raw[0]>>4))
	}
	return cp, nil
}

// lp is s as MQTT writes a string: a two-byte length, then the bytes.
func lp(s string) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...) }

// connectFlagNames are the CONNECT flags' names as the examples write them.
var connectFlagNames = []struct {
	bit  byte
	name string
}{{0x80, "user name"}, {0x40, "password"}, {0x20, "will retain"}, {0x04, "will"}, {0x02, "clean session"}}

func connectFlags(p *packets.ConnectPacket) byte {
	var b byte
	for _, f := range []struct {
		on  bool
		bit byte
	}{{p.UsernameFlag, 0x80}, {p.PasswordFlag, 0x40}, {p.WillRetain, 0x20}, {p.WillFlag, 0x04}, {p.CleanSession, 0x02}} {
		if f.on {
			b |= f.bit
		}
	}
	return b | p.WillQos<<3 | p.ReservedBit
}

// checkField checks one field's comment against the decoded packet and
// the field's own bytes; filters counts the SUBSCRIBE filters seen so far.
func checkField(f docField, cp packets.ControlPacket, filters *int) error {
	m := func(re string) []string { return regexp.MustCompile("^" + re + "$").FindStringSubmatch(f.comment) }
	num := func(s string) int { n, _ := strconv.Atoi(s); return n }
	want := func(got, want any, raw []byte) error {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("decodes to %v, the comment says %v", got, want)
		}
		if !bytes.Equal(f.raw, raw) {
			return fmt.Errorf("the field is % x, the comment says % x", f.raw, raw)
		}
		return nil
	}
	if v := m(`protocol name "([^"]*)"`); v != nil {
		if p, ok := cp.(*packets.ConnectPacket); ok {
			return want(p.ProtocolName, v[1], lp(v[1]))
		}
	}
	if v := m(`level (\d+)`); v != nil {
		if p, ok := cp.(*packets.ConnectPacket); ok {
			return want(p.ProtocolVersion, num(v[1]), []byte{byte(num(v[1]))})
		}
	}
	if v := m(`flags 0x([0-9a-f]{2}): (.+)`); v != nil {
		if p, ok := cp.(*packets.ConnectPacket); ok {
			b, _ := hex.DecodeString(v[1])
			var names []string
			for _, n := range connectFlagNames {
				if b[0]&n.bit != 0 {
					names = append(names, n.name)
				}
			}
			if strings.Join(names, ", ") != v[2] {
				return fmt.Errorf("flags %#x are %q, the comment says %q", b[0], strings.Join(names, ", "), v[2])
			}
			return want(fmt.Sprintf("%#x", connectFlags(p)), "0x"+v[1], b)
		}
	}
	if v := m(`keep-alive (\d+) s`); v != nil {
		if p, ok := cp.(*packets.ConnectPacket); ok {
			return want(p.Keepalive, num(v[1]), binary.BigEndian.AppendUint16(nil, uint16(num(v[1]))))
		}
	}
	if v := m(`client id "([^"]*)"`); v != nil {
		if p, ok := cp.(*packets.ConnectPacket); ok {
			return want(p.ClientIdentifier, v[1], lp(v[1]))
		}
	}
	if v := m(`user name "([^"]*)"`); v != nil {
		if p, ok := cp.(*packets.ConnectPacket); ok {
			return want(p.Username, v[1], lp(v[1]))
		}
	}
	if v := m(`password: the token, (\d+) bytes`); v != nil {
		if p, ok := cp.(*packets.ConnectPacket); ok {
			if err := wire.CheckToken(p.Password); err != nil {
				return fmt.Errorf("the password is no token: %v", err)
			}
			if got := strings.Join(f.chunks, ""); got != string(p.Password) {
				return fmt.Errorf("the password is %q, the comments say %q", p.Password, got)
			}
			return want(len(p.Password), num(v[1]), lp(string(p.Password)))
		}
	}
	if v := m(`session present (\d), return code (\d+)`); v != nil {
		if p, ok := cp.(*packets.ConnackPacket); ok {
			sp := byte(0)
			if p.SessionPresent {
				sp = 1
			}
			return want([2]byte{sp, p.ReturnCode}, [2]byte{byte(num(v[1])), byte(num(v[2]))}, []byte{byte(num(v[1])), byte(num(v[2]))})
		}
	}
	if v := m(`packet id (\d+)`); v != nil {
		return want(cp.Details().MessageID, num(v[1]), binary.BigEndian.AppendUint16(nil, uint16(num(v[1]))))
	}
	if v := m(`filter "([^"]*)", QoS (\d)`); v != nil {
		if p, ok := cp.(*packets.SubscribePacket); ok {
			i := *filters
			*filters++
			if i >= len(p.Topics) {
				return fmt.Errorf("filter %d of a SUBSCRIBE of %d", i+1, len(p.Topics))
			}
			return want([2]any{p.Topics[i], p.Qoss[i]}, [2]any{v[1], num(v[2])}, append(lp(v[1]), byte(num(v[2]))))
		}
	}
	if v := m(`return codes ((?:0x[0-9a-f]{2})(?:, 0x[0-9a-f]{2})*)`); v != nil {
		if p, ok := cp.(*packets.SubackPacket); ok {
			var codes []byte
			for _, c := range strings.Split(v[1], ", ") {
				b, _ := hex.DecodeString(strings.TrimPrefix(c, "0x"))
				codes = append(codes, b...)
			}
			return want(p.ReturnCodes, codes, codes)
		}
	}
	if v := m(`topic "([^"]*)"`); v != nil {
		if p, ok := cp.(*packets.PublishPacket); ok {
			return want(p.TopicName, v[1], lp(v[1]))
		}
	}
	if v := m(`payload (.+)`); v != nil {
		if p, ok := cp.(*packets.PublishPacket); ok {
			return want(string(p.Payload), v[1], []byte(v[1]))
		}
	}
	return fmt.Errorf("a comment this test cannot check against a %T", cp)
}

// TestProtocolDocMQTTExamples: every example packet of PROTOCOL §10 is one
// whole packet of the type its label names and as long as it says; the
// relay's reader decodes it, paho encodes the result to the same bytes,
// and every comment says what its bytes decode to.
func TestProtocolDocMQTTExamples(t *testing.T) {
	exs := mqttDocExamples(t)
	seen := map[string]int{}
	refusal := false
	for _, ex := range exs {
		where := fmt.Sprintf("%s:%d", protocolDoc, ex.line)
		if len(ex.raw) != ex.size {
			t.Errorf("%s: %d bytes written out, the label says %d", where, len(ex.raw), ex.size)
		}
		cp, err := ex.decode()
		if err != nil {
			t.Errorf("%s: does not decode: %v", where, err)
			continue
		}
		typ := ex.raw[0] >> 4
		if got := packetName(typ); got != ex.name {
			t.Errorf("%s: decodes as %s, the label says %s", where, got, ex.name)
		}
		toRelay := map[string]bool{"CONNECT": true, "SUBSCRIBE": true, "UNSUBSCRIBE": true, "PINGREQ": true, "DISCONNECT": true}
		toClock := map[string]bool{"CONNACK": true, "SUBACK": true, "UNSUBACK": true, "PINGRESP": true}
		if toRelay[ex.name] && ex.dir != "clock → relay" || toClock[ex.name] && ex.dir != "relay → clock" {
			t.Errorf("%s: a %s %s", where, ex.name, ex.dir)
		}
		var enc bytes.Buffer
		if err := cp.Write(&enc); err != nil || !bytes.Equal(enc.Bytes(), ex.raw) {
			t.Errorf("%s: paho encodes it differently (%v):\nthe text: % x\npaho:     % x", where, err, ex.raw, enc.Bytes())
		}
		// The first field is the fixed header.
		if len(ex.fields) == 0 {
			t.Errorf("%s: no fields", where)
			continue
		}
		fh := ex.fields[0]
		v := regexp.MustCompile(`^([A-Z]+)(?:, QoS (\d))?, remaining length (\d+)$`).FindStringSubmatch(fh.comment)
		d := cp.Details()
		switch {
		case v == nil:
			t.Errorf("%s:%d: the first line is the fixed header: want \"NAME, remaining length N\", got %q", protocolDoc, fh.line, fh.comment)
		case v[1] != ex.name:
			t.Errorf("%s:%d: the fixed header names %s, the label %s", protocolDoc, fh.line, v[1], ex.name)
		case strconv.Itoa(len(ex.raw)-len(fh.raw)) != v[3]:
			t.Errorf("%s:%d: remaining length %d, the comment says %s", protocolDoc, fh.line, len(ex.raw)-len(fh.raw), v[3])
		case ex.name == "PUBLISH" && v[2] != strconv.Itoa(int(d.Qos)):
			t.Errorf("%s:%d: QoS %d, the comment says %q", protocolDoc, fh.line, d.Qos, v[2])
		}
		if n, err := readLength(bytes.NewReader(fh.raw[1:])); err != nil || strconv.Itoa(n) != v[3] || 1+len(binary.AppendUvarint(nil, uint64(n))) != len(fh.raw) {
			t.Errorf("%s:%d: the fixed header's bytes are % x", protocolDoc, fh.line, fh.raw)
		}
		filters := 0
		for _, f := range ex.fields[1:] {
			if err := checkField(f, cp, &filters); err != nil {
				t.Errorf("%s:%d: %q: %v", protocolDoc, f.line, f.comment, err)
			}
		}
		if p, ok := cp.(*packets.SubscribePacket); ok && filters != len(p.Topics) {
			t.Errorf("%s: %d filters, %d commented", where, len(p.Topics), filters)
		}
		if p, ok := cp.(*packets.SubackPacket); ok && slices.Contains(p.ReturnCodes, 0x80) {
			refusal = true
		}
		seen[ex.name]++
	}
	// As of this writing: a CONNECT, two CONNACKs, a SUBSCRIBE and its
	// SUBACK, three PUBLISHes and a PUBACK. Fewer means the parser missed
	// some.
	if len(exs) < 9 {
		t.Errorf("found %d examples in §10, want at least 9", len(exs))
	}
	for _, name := range []string{"CONNECT", "CONNACK", "SUBSCRIBE", "SUBACK", "PUBLISH", "PUBACK"} {
		if seen[name] == 0 {
			t.Errorf("no valid %s example in §10", name)
		}
	}
	if !refusal {
		t.Error("no SUBACK in §10 shows a refused filter (0x80)")
	}
}

// TestProtocolDocMQTTExchange plays §10's examples against a relay: the
// CONNECT gets the CONNACK written there, the SUBSCRIBE its SUBACK, the
// webhook the PUBLISH, the stats their PUBACK and the NG result its answer,
// byte for byte; and the webhook answers the text gives are the relay's.
func TestProtocolDocMQTTExchange(t *testing.T) {
	sec, _ := mqttSection(t)
	pick := func(dir, name string, ok func(packets.ControlPacket) bool) (docPacket, packets.ControlPacket) {
		t.Helper()
		for _, ex := range mqttDocExamples(t) {
			if ex.dir != dir || ex.name != name {
				continue
			}
			if cp, err := ex.decode(); err == nil && (ok == nil || ok(cp)) {
				return ex, cp
			}
		}
		t.Fatalf("§10 has no %s %s example for this exchange", dir, name)
		return docPacket{}, nil
	}
	code := func(c byte) func(packets.ControlPacket) bool {
		return func(cp packets.ControlPacket) bool { return cp.(*packets.ConnackPacket).ReturnCode == c }
	}
	connect, cp := pick("clock → relay", "CONNECT", nil)
	accepted, _ := pick("relay → clock", "CONNACK", code(packets.Accepted))
	refused, _ := pick("relay → clock", "CONNACK", code(packets.ErrRefusedBadUsernameOrPassword))
	subscribe, _ := pick("clock → relay", "SUBSCRIBE", nil)
	suback, _ := pick("relay → clock", "SUBACK", nil)
	notify, np := pick("relay → clock", "PUBLISH", nil)
	stats, sp := pick("clock → relay", "PUBLISH", func(cp packets.ControlPacket) bool { return cp.Details().Qos == 1 })
	puback, _ := pick("relay → clock", "PUBACK", nil)
	result, rp := pick("clock → relay", "PUBLISH", func(cp packets.ControlPacket) bool {
		return strings.HasSuffix(cp.(*packets.PublishPacket).TopicName, "/cmd/notify/result")
	})
	tok := string(cp.(*packets.ConnectPacket).Password)
	says := func(what string, rep router.Reply) {
		t.Helper()
		if !strings.Contains(sec, "`"+string(rep.Body)+"`") {
			t.Errorf("%s: the relay answers %d %s, which §10 does not say", what, rep.Status, rep.Body)
		}
		if rep.Status != 200 || rep.Path != router.PathMQTTPlain || !strings.Contains(sec, "`Relay-Path: "+rep.Path+"`") {
			t.Errorf("%s: %d, path %q", what, rep.Status, rep.Path)
		}
	}
	rl := start(t)

	c := dial(t, rl.addr)
	exchange := func(send []byte, want docPacket) {
		t.Helper()
		c.sendBytes(send)
		if got := c.rawPacket(); !bytes.Equal(got, want.raw) {
			t.Fatalf("the relay answered % x to the example of %s:%d, want the example of line %d: % x",
				got, protocolDoc, want.line, want.line, want.raw)
		}
	}
	exchange(connect.raw, accepted)
	exchange(subscribe.raw, suback)

	res := rl.async(tok, "notify", `{"text":"Hi"}`)
	if got := c.rawPacket(); !bytes.Equal(got, notify.raw) {
		t.Fatalf("the webhook became % x, want the example of line %d: % x", got, notify.line, notify.raw)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	says("notify", r.rep)

	exchange(stats.raw, puback)
	rep, err := rl.deliver(tok, "stats", "")
	if err != nil || !jsonEqual(rep.Body, sp.(*packets.PublishPacket).Payload) {
		t.Fatalf("stats: %s %v, want the clock's %s", rep.Body, err, sp.(*packets.PublishPacket).Payload)
	}
	says("stats", rep)

	// The same CONNECT with a password that is no token.
	bad := *cp.(*packets.ConnectPacket)
	bad.Password = []byte("hunter2")
	c2 := dial(t, rl.addr)
	c2.send(&bad)
	if got := c2.rawPacket(); !bytes.Equal(got, refused.raw) {
		t.Fatalf("hunter2: CONNACK % x, want the example of line %d: % x", got, refused.line, refused.raw)
	}
	c2.closed()

	// AWTRIX NG: the webhook on its prefix, confirmed by the example's
	// result.
	prefix := strings.TrimSuffix(rp.(*packets.PublishPacket).TopicName, "/cmd/notify/result")
	ngTok := wire.NewToken()
	ng := dial(t, rl.addr)
	if code := ng.connect(ngTok); code != packets.Accepted {
		t.Fatalf("NG CONNACK %d", code)
	}
	if codes := ng.subscribe(prefix + "/cmd/#"); string(codes) != "\x00" {
		t.Fatalf("NG SUBACK %v", codes)
	}
	res = rl.async(ngTok, "notify", `{"text":"Hi"}`)
	if p := ng.nextPublish(); p.TopicName != prefix+"/cmd/notify" || string(p.Payload) != string(np.(*packets.PublishPacket).Payload) {
		t.Fatalf("NG got %s %s", p.TopicName, p.Payload)
	}
	ng.sendBytes(result.raw)
	r = <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	says("NG notify", r.rep)
}

// rawPacket reads the relay's next packet as bytes, fixed header included.
func (c *client) rawPacket() []byte {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.br.ReadByte()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	n, err := readLength(c.br)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	out := append([]byte{b}, binary.AppendUvarint(nil, uint64(n))...)
	body := make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return append(out, body...)
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}
