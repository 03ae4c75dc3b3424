package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// sampleFrames holds one or more valid frames of every type, encoded. The
// round-trip tests and the fuzz seed corpus share it.
func sampleFrames() [][]byte {
	tok := []byte("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MC1fQUJDREVGRw")
	return [][]byte{
		Login{Version: Version, Token: tok, Agent: "awtrix-relay-client/1.0 (esp32)"}.Append(nil),
		Login{Version: 0, Token: nil, Agent: ""}.Append(nil),
		Login{Version: 255, Token: bytes.Repeat([]byte("x"), 255), Agent: strings.Repeat("~", maxAgentLen)}.Append(nil),
		Welcome{Version: Version, MaxBody: 64 << 10, MaxInflight: 8, IdleTimeout: 30 * time.Second}.Append(nil),
		Welcome{Version: 255, MaxBody: 0xffffffff, MaxInflight: 0xffff, IdleTimeout: 0xffff * time.Second}.Append(nil),
		Refuse{Reason: ReasonToken, Message: "token too weak"}.Append(nil),
		Refuse{Reason: Reason(200), Message: strings.Repeat(" ", maxTextLen)}.Append(nil),
		Rotate{Token: tok}.Append(nil),
		Rotate{}.Append(nil),
		AppendRotated(nil),
		GoAway{Reason: ReasonDraining, ReconnectAfter: 1500 * time.Millisecond, Redirect: "relay2.example.net:443", Message: "restarting"}.Append(nil),
		GoAway{Reason: ReasonFull, ReconnectAfter: 0xffffffff * time.Millisecond}.Append(nil),
		Message{Mode: "notify", Body: []byte(`{"text":"hello"}`)}.Append(nil),
		Message{Mode: strings.Repeat("m", MaxModeLen)}.Append(nil),
		Reply{Status: 200, Body: []byte(`{"ok":true}`)}.Append(nil),
		Reply{Status: 599}.Append(nil),
	}
}

// parseFrame decodes a payload with the parser of its frame type. Rotated
// has no parser; it is well-formed when its payload is empty.
func parseFrame(t FrameType, p []byte) (any, error) {
	switch t {
	case FrameLogin:
		return ParseLogin(p)
	case FrameWelcome:
		return ParseWelcome(p)
	case FrameRefuse:
		return ParseRefuse(p)
	case FrameRotate:
		return ParseRotate(p)
	case FrameRotated:
		if len(p) != 0 {
			return nil, ErrMalformed
		}
		return struct{}{}, nil
	case FrameGoAway:
		return ParseGoAway(p)
	case FrameMessage:
		return ParseMessage(p, Version)
	case FrameReply:
		return ParseReply(p)
	}
	return nil, ErrUnexpected
}

// appendFrame is parseFrame's inverse.
func appendFrame(b []byte, f any) []byte {
	switch f := f.(type) {
	case Login:
		return f.Append(b)
	case Welcome:
		return f.Append(b)
	case Refuse:
		return f.Append(b)
	case Rotate:
		return f.Append(b)
	case struct{}:
		return AppendRotated(b)
	case GoAway:
		return f.Append(b)
	case Message:
		return f.Append(b)
	case Reply:
		return f.Append(b)
	}
	panic("appendFrame: unknown frame")
}

// sameFrame compares decoded frames, treating nil and empty byte slices alike.
func sameFrame(a, b any) bool {
	switch a := a.(type) {
	case Login:
		b, ok := b.(Login)
		return ok && a.Version == b.Version && bytes.Equal(a.Token, b.Token) && a.Agent == b.Agent
	case Rotate:
		b, ok := b.(Rotate)
		return ok && bytes.Equal(a.Token, b.Token)
	case Message:
		b, ok := b.(Message)
		return ok && a.Mode == b.Mode && a.Query == b.Query && a.Timeout == b.Timeout && bytes.Equal(a.Body, b.Body)
	case Reply:
		b, ok := b.(Reply)
		return ok && a.Status == b.Status && bytes.Equal(a.Body, b.Body)
	}
	return a == b // Welcome, Refuse, GoAway, struct{}: comparable
}

// readOne reads exactly one frame from enc and fails unless it used all of it.
func readOne(t *testing.T, enc []byte) (FrameType, []byte) {
	t.Helper()
	r := bytes.NewReader(enc)
	typ, p, err := ReadFrame(r, MaxPayload)
	if err != nil {
		t.Fatalf("ReadFrame(% x): %v", enc, err)
	}
	if r.Len() != 0 {
		t.Fatalf("ReadFrame left %d bytes of % x", r.Len(), enc)
	}
	if want := binary.BigEndian.Uint32(enc[1:HeaderLen]); uint32(len(p)) != want {
		t.Fatalf("payload is %d bytes, header says %d", len(p), want)
	}
	return typ, p
}

func TestRoundTrip(t *testing.T) {
	tok := []byte("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MC1fQUJDREVGRw")
	tests := []struct {
		name string
		typ  FrameType
		f    any
	}{
		{"login", FrameLogin, Login{Version: Version, Token: tok, Agent: "awtrix-relay-client/1.0"}},
		{"login/empty", FrameLogin, Login{}},
		{"login/max", FrameLogin, Login{Version: 255, Token: bytes.Repeat([]byte{0}, 255), Agent: strings.Repeat("a", maxAgentLen)}},
		{"welcome", FrameWelcome, Welcome{Version: Version, MaxBody: 1 << 16, MaxInflight: 16, IdleTimeout: 30 * time.Second}},
		{"welcome/zero", FrameWelcome, Welcome{}},
		{"welcome/max", FrameWelcome, Welcome{Version: 255, MaxBody: 0xffffffff, MaxInflight: 0xffff, IdleTimeout: 0xffff * time.Second}},
		{"refuse", FrameRefuse, Refuse{Reason: ReasonInUse, Message: "token in use"}},
		{"refuse/empty", FrameRefuse, Refuse{}},
		{"refuse/max", FrameRefuse, Refuse{Reason: 255, Message: strings.Repeat("~", maxTextLen)}},
		{"rotate", FrameRotate, Rotate{Token: tok}},
		{"rotate/empty", FrameRotate, Rotate{}},
		{"rotate/max", FrameRotate, Rotate{Token: bytes.Repeat([]byte{0xff}, 255)}},
		{"rotated", FrameRotated, struct{}{}},
		{"goaway", FrameGoAway, GoAway{Reason: ReasonDraining, ReconnectAfter: 2500 * time.Millisecond, Redirect: "[2001:db8::1]:443", Message: "bye"}},
		{"goaway/empty", FrameGoAway, GoAway{}},
		{"goaway/max", FrameGoAway, GoAway{Reason: 255, ReconnectAfter: 0xffffffff * time.Millisecond, Redirect: strings.Repeat("r", maxTextLen), Message: strings.Repeat("m", maxTextLen)}},
		{"message", FrameMessage, Message{Mode: "notify", Body: []byte(`{"text":"hi"}`)}},
		{"message/no-body", FrameMessage, Message{Mode: "app"}},
		{"message/max-mode", FrameMessage, Message{Mode: strings.Repeat("z", MaxModeLen), Body: []byte{0, 1, 2, 0xff}}},
		{"message/query", FrameMessage, Message{Mode: "custom", Query: "name=weather%2Fnow", Timeout: 4500 * time.Millisecond, Body: []byte(`[{"text":"1"}]`)}},
		{"message/max-query", FrameMessage, Message{Mode: "custom", Query: "name=" + strings.Repeat("q", MaxQueryLen-5), Timeout: 0xffffffff * time.Millisecond}},
		{"reply", FrameReply, Reply{Status: 200, Body: []byte(`{"ok":true}`)}},
		{"reply/min", FrameReply, Reply{Status: 200}},
		{"reply/max", FrameReply, Reply{Status: 599, Body: bytes.Repeat([]byte("b"), MaxReplyBody)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			enc := appendFrame(bytes.Clone(prefix), tt.f)
			if !bytes.HasPrefix(enc, prefix) {
				t.Fatalf("Append clobbered its destination: % x", enc[:len(prefix)])
			}
			enc = enc[len(prefix):]
			typ, p := readOne(t, enc)
			if typ != tt.typ {
				t.Fatalf("type = %s, want %s", typ, tt.typ)
			}
			got, err := parseFrame(typ, p)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !sameFrame(got, tt.f) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tt.f)
			}
			if again := appendFrame(nil, got); !bytes.Equal(again, enc) {
				t.Fatalf("re-encoding differs:\n got % x\nwant % x", again, enc)
			}
		})
	}
}

func TestSampleFramesParse(t *testing.T) {
	seen := map[FrameType]bool{}
	for _, enc := range sampleFrames() {
		typ, p := readOne(t, enc)
		if _, err := parseFrame(typ, p); err != nil {
			t.Errorf("%s % x: %v", typ, enc, err)
		}
		seen[typ] = true
	}
	for _, typ := range []FrameType{FrameLogin, FrameWelcome, FrameRefuse, FrameRotate, FrameRotated, FrameGoAway, FrameMessage, FrameReply} {
		if !seen[typ] {
			t.Errorf("sampleFrames has no %s frame", typ)
		}
	}
}

func TestEncoding(t *testing.T) {
	// Byte-exact encodings, so that an encoder and decoder that agree with
	// each other but not with the protocol cannot both pass.
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"header", AppendHeader(nil, FrameReply, 0x01020304), []byte{0x11, 1, 2, 3, 4}},
		{"login", Login{Version: 1, Token: []byte("tk"), Agent: "a"}.Append(nil), []byte{0x01, 0, 0, 0, 6, 1, 2, 't', 'k', 1, 'a'}},
		{"welcome", Welcome{Version: 1, MaxBody: 0x010203, MaxInflight: 0x0405, IdleTimeout: 0x0607 * time.Second}.Append(nil),
			[]byte{0x02, 0, 0, 0, 9, 1, 0, 1, 2, 3, 4, 5, 6, 7}},
		{"refuse", Refuse{Reason: ReasonFull, Message: "no"}.Append(nil), []byte{0x03, 0, 0, 0, 4, 5, 2, 'n', 'o'}},
		{"rotate", Rotate{Token: []byte("t")}.Append(nil), []byte{0x04, 0, 0, 0, 2, 1, 't'}},
		{"rotated", AppendRotated(nil), []byte{0x05, 0, 0, 0, 0}},
		{"goaway", GoAway{Reason: ReasonDraining, ReconnectAfter: 0x01020304 * time.Millisecond, Redirect: "h:1", Message: "m"}.Append(nil),
			[]byte{0x06, 0, 0, 0, 11, 4, 1, 2, 3, 4, 3, 'h', ':', '1', 1, 'm'}},
		{"message v1", Message{Mode: "app", Query: "x=1", Timeout: time.Second, Body: []byte("{}")}.AppendAt(nil, 1), []byte{0x10, 0, 0, 0, 6, 3, 'a', 'p', 'p', '{', '}'}},
		{"message v2", Message{Mode: "app", Query: "x=1", Timeout: 0x01020304 * time.Millisecond, Body: []byte("{}")}.Append(nil),
			[]byte{0x10, 0, 0, 0, 14, 3, 'a', 'p', 'p', 3, 'x', '=', '1', 1, 2, 3, 4, '{', '}'}},
		{"reply", Reply{Status: 404, Body: []byte("{}")}.Append(nil), []byte{0x11, 0, 0, 0, 4, 0x01, 0x94, '{', '}'}},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s:\n got % x\nwant % x", tt.name, tt.got, tt.want)
		}
	}
}

func TestMessageAppendHeader(t *testing.T) {
	bodies := [][]byte{nil, {}, []byte("{}"), bytes.Repeat([]byte{0xa5}, 70000)}
	for v := uint8(MinVersion); v <= Version; v++ {
		for _, mode := range append([]string{"x", strings.Repeat("y", MaxModeLen)}, Modes...) {
			for _, body := range bodies {
				m := Message{Mode: mode, Query: "name=a%20b", Timeout: 1500 * time.Millisecond, Body: body}
				want := m.AppendAt([]byte("pre"), v)
				got := append(m.AppendHeader([]byte("pre"), v), body...)
				if !bytes.Equal(got, want) {
					t.Fatalf("v%d mode %q, body %d bytes: AppendHeader+body differs from AppendAt", v, mode, len(body))
				}
				if hdr := len(m.AppendHeader(nil, v)) - HeaderLen; hdr > MessageOverhead(v) {
					t.Fatalf("v%d: a header of %d bytes passes MessageOverhead %d", v, hdr, MessageOverhead(v))
				}
				typ, p := readOne(t, got[3:])
				back, err := ParseMessage(p, v)
				if typ != FrameMessage || err != nil || back.Mode != mode || !bytes.Equal(back.Body, body) {
					t.Fatalf("v%d mode %q, body %d bytes: parsed %s %q %d bytes, %v", v, mode, len(body), typ, back.Mode, len(back.Body), err)
				}
				if v == 1 && (back.Query != "" || back.Timeout != 0) || v >= 2 && (back.Query != m.Query || back.Timeout != m.Timeout) {
					t.Fatalf("v%d: query %q timeout %v", v, back.Query, back.Timeout)
				}
			}
		}
	}
	if n := len(Message{Mode: strings.Repeat("m", MaxModeLen), Query: strings.Repeat("q", MaxQueryLen)}.AppendHeader(nil, Version)) - HeaderLen; n != MessageOverhead(Version) {
		t.Fatalf("the largest header is %d bytes, MessageOverhead says %d", n, MessageOverhead(Version))
	}
}

func TestWelcomeIdleTimeout(t *testing.T) {
	tests := []struct{ in, want time.Duration }{
		{0, 0},
		{999 * time.Millisecond, 0}, // whole seconds on the wire
		{1500 * time.Millisecond, time.Second},
		{90 * time.Second, 90 * time.Second},
		{0xffff * time.Second, 0xffff * time.Second},
		{0x10000 * time.Second, 0xffff * time.Second}, // saturates
		{1 << 62, 0xffff * time.Second},
	}
	for _, tt := range tests {
		_, p := readOne(t, Welcome{IdleTimeout: tt.in}.Append(nil))
		w, err := ParseWelcome(p)
		if err != nil || w.IdleTimeout != tt.want {
			t.Errorf("IdleTimeout %v: decoded %v, %v; want %v", tt.in, w.IdleTimeout, err, tt.want)
		}
	}
}

func TestGoAwayReconnectAfter(t *testing.T) {
	tests := []struct{ in, want time.Duration }{
		{0, 0},
		{999 * time.Microsecond, 0}, // whole milliseconds on the wire
		{1234 * time.Millisecond, 1234 * time.Millisecond},
		{0xffffffff * time.Millisecond, 0xffffffff * time.Millisecond},
		{0x100000000 * time.Millisecond, 0xffffffff * time.Millisecond}, // saturates
	}
	for _, tt := range tests {
		_, p := readOne(t, GoAway{ReconnectAfter: tt.in}.Append(nil))
		g, err := ParseGoAway(p)
		if err != nil || g.ReconnectAfter != tt.want {
			t.Errorf("ReconnectAfter %v: decoded %v, %v; want %v", tt.in, g.ReconnectAfter, err, tt.want)
		}
	}
}

func TestTextClipped(t *testing.T) {
	long := strings.Repeat("0123456789", 30) // 300 bytes
	_, p := readOne(t, Refuse{Reason: ReasonProtocol, Message: long}.Append(nil))
	r, err := ParseRefuse(p)
	if err != nil || r.Message != long[:maxTextLen] {
		t.Errorf("Refuse: got %d-byte message, %v; want the first %d bytes", len(r.Message), err, maxTextLen)
	}
	_, p = readOne(t, GoAway{Redirect: long, Message: long + "x"}.Append(nil))
	g, err := ParseGoAway(p)
	if err != nil || g.Redirect != long[:maxTextLen] || g.Message != long[:maxTextLen] {
		t.Errorf("GoAway: got %d/%d-byte texts, %v; want %d", len(g.Redirect), len(g.Message), err, maxTextLen)
	}
}

func TestReadFrameSequence(t *testing.T) {
	var stream []byte
	frames := sampleFrames()
	for _, f := range frames {
		stream = append(stream, f...)
	}
	// iotest-style one byte at a time: ReadFrame must not assume a Read
	// fills its buffer.
	r := &oneByteReader{b: stream}
	for i, f := range frames {
		typ, p, err := ReadFrame(r, MaxPayload)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if typ != FrameType(f[0]) || !bytes.Equal(p, f[HeaderLen:]) {
			t.Fatalf("frame %d: got %s % x, want % x", i, typ, p, f)
		}
	}
	if _, _, err := ReadFrame(r, MaxPayload); err != io.EOF {
		t.Fatalf("after the last frame: err = %v, want io.EOF", err)
	}
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], r.b = r.b[0], r.b[1:]
	return 1, nil
}

// headerOnly serves a frame header and fails the test if anything reads past
// it: ReadFrame must refuse an oversized frame from the header alone.
type headerOnly struct {
	t   *testing.T
	hdr []byte
}

func (r *headerOnly) Read(p []byte) (int, error) {
	if len(r.hdr) == 0 {
		r.t.Errorf("ReadFrame read past the header of an oversized frame")
		return 0, errors.New("read past the header")
	}
	n := copy(p, r.hdr)
	r.hdr = r.hdr[n:]
	return n, nil
}

func TestReadFrameErrors(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		typ, p, err := ReadFrame(bytes.NewReader(nil), MaxPayload)
		if err != io.EOF || p != nil || typ != 0 {
			t.Fatalf("got %s, %v, %v; want io.EOF exactly", typ, p, err)
		}
	})
	t.Run("truncated header", func(t *testing.T) {
		hdr := AppendHeader(nil, FrameReply, 2)
		for n := 1; n < HeaderLen; n++ {
			_, p, err := ReadFrame(bytes.NewReader(hdr[:n]), MaxPayload)
			if !errors.Is(err, io.ErrUnexpectedEOF) || p != nil {
				t.Errorf("%d header bytes: %v, %v; want io.ErrUnexpectedEOF", n, p, err)
			}
		}
	})
	t.Run("truncated payload", func(t *testing.T) {
		enc := Reply{Status: 200, Body: []byte("{}")}.Append(nil)
		for n := HeaderLen; n < len(enc); n++ {
			typ, p, err := ReadFrame(bytes.NewReader(enc[:n]), MaxPayload)
			if !errors.Is(err, io.ErrUnexpectedEOF) || p != nil || typ != FrameReply {
				t.Errorf("%d of %d bytes: %s, %v, %v; want REPLY, io.ErrUnexpectedEOF", n, len(enc), typ, p, err)
			}
		}
	})
	t.Run("reader error", func(t *testing.T) {
		boom := errors.New("boom")
		r := io.MultiReader(bytes.NewReader(AppendHeader(nil, FrameMessage, 10)), bytes.NewReader([]byte("abc")), errReader{boom})
		if _, _, err := ReadFrame(r, MaxPayload); !errors.Is(err, boom) {
			t.Errorf("payload: err = %v, want %v", err, boom)
		}
		if _, _, err := ReadFrame(errReader{boom}, MaxPayload); !errors.Is(err, boom) {
			t.Errorf("header: err = %v, want %v", err, boom)
		}
	})
	t.Run("too large", func(t *testing.T) {
		tests := []struct {
			n   uint32
			max int
		}{
			{1, 0},
			{11, 10},
			{MaxControlPayload + 1, MaxControlPayload},
			{MaxPayload + 1, MaxPayload},
			{MaxPayload + 1, MaxPayload * 4}, // max is capped at MaxPayload
			{MaxPayload + 1, int(^uint(0) >> 1)},
			{0xffffffff, MaxPayload},
		}
		for _, tt := range tests {
			hdr := binary.BigEndian.AppendUint32([]byte{byte(FrameMessage)}, tt.n)
			typ, p, err := ReadFrame(&headerOnly{t: t, hdr: hdr}, tt.max)
			if !errors.Is(err, ErrTooLarge) || p != nil || typ != FrameMessage {
				t.Errorf("length %d, max %d: %s, %d bytes, %v; want MESSAGE, ErrTooLarge", tt.n, tt.max, typ, len(p), err)
			}
		}
	})
	t.Run("at the limit", func(t *testing.T) {
		tests := []struct{ n, max int }{
			{0, 0},
			{10, 10},
			{MaxPayload, MaxPayload},
			{MaxPayload, MaxPayload * 4},
		}
		for _, tt := range tests {
			r := io.MultiReader(bytes.NewReader(AppendHeader(nil, FrameMessage, tt.n)), bytes.NewReader(make([]byte, tt.n)))
			_, p, err := ReadFrame(r, tt.max)
			if err != nil || len(p) != tt.n {
				t.Errorf("length %d, max %d: %d bytes, %v", tt.n, tt.max, len(p), err)
			}
		}
	})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestParseRejects(t *testing.T) {
	login := func(b ...byte) func() error { return func() error { _, err := ParseLogin(b); return err } }
	welcome := func(b ...byte) func() error { return func() error { _, err := ParseWelcome(b); return err } }
	refuse := func(b ...byte) func() error { return func() error { _, err := ParseRefuse(b); return err } }
	rotate := func(b ...byte) func() error { return func() error { _, err := ParseRotate(b); return err } }
	goaway := func(b ...byte) func() error { return func() error { _, err := ParseGoAway(b); return err } }
	message := func(b ...byte) func() error { return func() error { _, err := ParseMessage(b, 1); return err } }
	message2 := func(b ...byte) func() error { return func() error { _, err := ParseMessage(b, 2); return err } }
	reply := func(b ...byte) func() error { return func() error { _, err := ParseReply(b); return err } }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	agent65 := cat([]byte{1, 0, 65}, bytes.Repeat([]byte("a"), 65))
	mode33 := cat([]byte{33}, bytes.Repeat([]byte("a"), 33))
	bigReply := cat([]byte{0, 200}, make([]byte, MaxReplyBody+1))

	tests := []struct {
		name  string
		parse func() error
	}{
		{"login/empty", login()},
		{"login/version only", login(1)},
		{"login/short token", login(1, 5, 'a', 'b')},
		{"login/no agent length", login(1, 2, 'a', 'b')},
		{"login/short agent", login(1, 0, 3, 'a')},
		{"login/trailing", login(1, 1, 't', 1, 'a', 'x')},
		{"login/agent control char", login(1, 0, 2, 'a', 0x1f)},
		{"login/agent DEL", login(1, 0, 1, 0x7f)},
		{"login/agent non-ASCII", login(1, 0, 2, 0xc3, 0xa9)},
		{"login/agent NUL", login(1, 0, 1, 0)},
		{"login/agent 65 bytes", login(agent65...)},
		{"welcome/empty", welcome()},
		{"welcome/8 bytes", welcome(1, 0, 0, 0, 1, 0, 1, 0)},
		{"welcome/trailing", welcome(1, 0, 0, 0, 1, 0, 1, 0, 30, 0)},
		{"refuse/empty", refuse()},
		{"refuse/no message length", refuse(1)},
		{"refuse/short message", refuse(1, 3, 'a', 'b')},
		{"refuse/trailing", refuse(1, 1, 'a', 'b')},
		{"refuse/message newline", refuse(1, 2, 'a', '\n')},
		{"refuse/message 0x80", refuse(1, 1, 0x80)},
		{"rotate/empty", rotate()},
		{"rotate/short token", rotate(3, 'a', 'b')},
		{"rotate/trailing", rotate(1, 'a', 'b')},
		{"goaway/empty", goaway()},
		{"goaway/short reconnect", goaway(4, 0, 0, 1)},
		{"goaway/no redirect length", goaway(4, 0, 0, 1, 0)},
		{"goaway/short redirect", goaway(4, 0, 0, 1, 0, 2, 'h')},
		{"goaway/no message length", goaway(4, 0, 0, 1, 0, 0)},
		{"goaway/short message", goaway(4, 0, 0, 1, 0, 0, 1)},
		{"goaway/trailing", goaway(4, 0, 0, 1, 0, 0, 0, 0)},
		{"goaway/redirect tab", goaway(4, 0, 0, 1, 0, 1, '\t', 0)},
		{"goaway/message 0xff", goaway(4, 0, 0, 1, 0, 0, 1, 0xff)},
		{"message/empty", message()},
		{"message/mode length 0", message(0, '{', '}')},
		{"message/mode length 33", message(mode33...)},
		{"message/mode length 255", message(cat([]byte{255}, bytes.Repeat([]byte("a"), 300))...)},
		{"message/short mode", message(5, 'd', 'r', 'a')},
		{"message/mode control char", message(3, 'a', '\r', 'p')},
		{"message/mode non-ASCII", message(2, 0xe2, 0x80)},
		{"message v2/no query length", message2(1, 'a')},
		{"message v2/short query", message2(1, 'a', 5, 'n', '=')},
		{"message v2/short timeout", message2(1, 'a', 0, 0, 0, 1)},
		{"message v2/query with a space", message2(1, 'a', 3, 'n', '=', ' ', 0, 0, 0, 0)},
		{"message v2/query bad escape", message2(1, 'a', 3, '%', 'z', 'z', 0, 0, 0, 0)},
		{"message v2/query semicolon", message2(1, 'a', 3, 'a', ';', 'b', 0, 0, 0, 0)},
		{"message v2/query control char", message2(1, 'a', 1, '\n', 0, 0, 0, 0)},
		{"reply/empty", reply()},
		{"reply/1 byte", reply(0)},
		{"reply/status 0", reply(0, 0)},
		{"reply/status 199", reply(0, 199)},
		{"reply/status 600", reply(0x02, 0x58)},
		{"reply/status 65535", reply(0xff, 0xff, '{', '}')},
		{"reply/body 64KiB+1", reply(bigReply...)},
	}
	for _, tt := range tests {
		err := tt.parse()
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", tt.name, err)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	// The far edges of what each parser must still accept.
	agent64 := append([]byte{1, 0, 64}, bytes.Repeat([]byte("~"), 64)...)
	if f, err := ParseLogin(agent64); err != nil || len(f.Agent) != 64 {
		t.Errorf("login with 64-byte agent: %v", err)
	}
	printable := make([]byte, 0, 0x7f-0x20)
	for c := byte(0x20); c <= 0x7e; c++ {
		printable = append(printable, c)
	}
	if f, err := ParseRefuse(append([]byte{1, byte(len(printable))}, printable...)); err != nil || f.Message != string(printable) {
		t.Errorf("refuse with every printable character: %q, %v", f.Message, err)
	}
	// Tokens are opaque to the parser: CheckToken judges them later.
	if f, err := ParseRotate([]byte{2, 0, 0xff}); err != nil || !bytes.Equal(f.Token, []byte{0, 0xff}) {
		t.Errorf("rotate with binary token: %v", err)
	}
	if f, err := ParseMessage([]byte{1, 'a'}, 1); err != nil || f.Mode != "a" || len(f.Body) != 0 {
		t.Errorf("message with 1-byte mode, no body: %+v, %v", f, err)
	}
	for _, status := range []uint16{200, 204, 404, 599} {
		b := append(binary.BigEndian.AppendUint16(nil, status), make([]byte, MaxReplyBody)...)
		if f, err := ParseReply(b); err != nil || f.Status != status || len(f.Body) != MaxReplyBody {
			t.Errorf("reply %d with 64 KiB body: %d, %d bytes, %v", status, f.Status, len(f.Body), err)
		}
	}
}

func TestParseAliases(t *testing.T) {
	// Message and Reply bodies alias the payload (documented), so a
	// transport can forward them without a copy.
	p := []byte{3, 'a', 'p', 'p', '{', '}'}
	m, err := ParseMessage(p, 1)
	if err != nil || &m.Body[0] != &p[4] {
		t.Errorf("Message body does not alias the payload (%v)", err)
	}
	p = []byte{0, 200, '{', '}'}
	r, err := ParseReply(p)
	if err != nil || &r.Body[0] != &p[2] {
		t.Errorf("Reply body does not alias the payload (%v)", err)
	}
}

func TestExpect(t *testing.T) {
	if err := Expect(FrameLogin, FrameLogin); err != nil {
		t.Errorf("Expect(LOGIN, LOGIN) = %v", err)
	}
	err := Expect(FrameReply, FrameLogin)
	if !errors.Is(err, ErrUnexpected) || errors.Is(err, ErrMalformed) {
		t.Errorf("Expect(REPLY, LOGIN) = %v, want ErrUnexpected", err)
	}
	if err := Expect(FrameType(0x7f), FrameMessage); !errors.Is(err, ErrUnexpected) {
		t.Errorf("Expect(0x7f, MESSAGE) = %v, want ErrUnexpected", err)
	}
}

func TestStrings(t *testing.T) {
	names := map[string]bool{}
	for _, typ := range []FrameType{FrameLogin, FrameWelcome, FrameRefuse, FrameRotate, FrameRotated, FrameGoAway, FrameMessage, FrameReply} {
		s := typ.String()
		if names[s] || strings.HasPrefix(s, "frame(") {
			t.Errorf("FrameType(0x%02x).String() = %q: duplicate or unnamed", byte(typ), s)
		}
		names[s] = true
	}
	if s := FrameType(0xab).String(); s != "frame(0xab)" {
		t.Errorf("unknown FrameType: %q", s)
	}
	for r := ReasonVersion; r <= ReasonInternal; r++ {
		s := r.String()
		if names[s] || strings.HasPrefix(s, "reason(") {
			t.Errorf("Reason(%d).String() = %q: duplicate or unnamed", r, s)
		}
		names[s] = true
	}
	if s := Reason(0).String(); s != "reason(0)" {
		t.Errorf("unknown Reason: %q", s)
	}
}

func TestReadFrameNegativeLimit(t *testing.T) {
	for _, max := range []int{-1, -MaxPayload, int(^uint(0)>>1) * -1} {
		hdr := binary.BigEndian.AppendUint32([]byte{byte(FrameMessage)}, MaxPayload+1)
		_, p, err := ReadFrame(&headerOnly{t: t, hdr: hdr}, max)
		if !errors.Is(err, ErrTooLarge) || p != nil {
			t.Errorf("max %d, length %d: %d bytes, %v; want ErrTooLarge", max, MaxPayload+1, len(p), err)
		}
	}
}

// encodesFaithfully fails unless enc() panics or returns one frame that
// parses back to want. Encoders must never emit a frame their own decoder
// reads differently or refuses.
func encodesFaithfully(t *testing.T, want any, enc func() []byte) {
	t.Helper()
	var b []byte
	func() {
		defer func() { _ = recover() }()
		b = enc()
	}()
	if b == nil {
		return // refused loudly: acceptable
	}
	typ, p, err := ReadFrame(bytes.NewReader(b), MaxPayload)
	if err != nil {
		t.Errorf("%T: encoded frame does not read back: %v", want, err)
		return
	}
	got, err := parseFrame(typ, p)
	if err != nil {
		t.Errorf("%T: encoded frame does not parse: %v", want, err)
		return
	}
	if !sameFrame(got, want) {
		t.Errorf("encoded frame decodes to something else:\n got %s\nwant %s", brief(got), brief(want))
	}
}

// brief formats a frame for a failure message, cut to a readable length.
func brief(f any) string {
	s := fmt.Sprintf("%+q", f)
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}

func TestLongFieldsNeverMisframe(t *testing.T) {
	long := strings.Repeat("x", 256)
	encodesFaithfully(t, Message{Mode: "n" + long, Body: []byte("{}")}, func() []byte {
		return Message{Mode: "n" + long, Body: []byte("{}")}.Append(nil)
	})
	encodesFaithfully(t, Login{Version: 1, Token: []byte(long)}, func() []byte {
		return Login{Version: 1, Token: []byte(long)}.Append(nil)
	})
	// Agent is cut to its 64-byte limit rather than refused.
	encodesFaithfully(t, Login{Version: 1, Agent: long[:64]}, func() []byte {
		return Login{Version: 1, Agent: long}.Append(nil)
	})
	encodesFaithfully(t, Rotate{Token: []byte(long)}, func() []byte {
		return Rotate{Token: []byte(long)}.Append(nil)
	})
}

func TestNegativeDurationsClampToZero(t *testing.T) {
	_, p := readOne(t, Welcome{IdleTimeout: -time.Second}.Append(nil))
	if w, err := ParseWelcome(p); err != nil || w.IdleTimeout != 0 {
		t.Errorf("IdleTimeout -1s decodes as %v, %v; want 0", w.IdleTimeout, err)
	}
	_, p = readOne(t, GoAway{ReconnectAfter: -time.Millisecond}.Append(nil))
	if g, err := ParseGoAway(p); err != nil || g.ReconnectAfter != 0 {
		t.Errorf("ReconnectAfter -1ms decodes as %v, %v; want 0", g.ReconnectAfter, err)
	}
}
