// Package wire is the relay's device protocol, major version 1 (ALPN
// "awtrix-relay/1") in minor versions 1 and 2: the frames a device and the
// relay exchange on the streams of any transport (raw QUIC, WebTransport,
// or a WebSocket multiplexed by package transport), their encoding, the
// close and reset codes, and the device token rules.
//
// Every frame is a 5-byte header (type, then payload length as a big-endian
// uint32) followed by the payload. docs/PROTOCOL.md is the normative text;
// this package is its reference implementation.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// ALPN is the TLS application protocol of raw QUIC device connections.
const ALPN = "awtrix-relay/1"

// Minor versions inside ALPN's major version. A device offers the highest
// it speaks in LOGIN; the session runs at Negotiate's answer, which WELCOME
// names.
// Version 2 adds a query and a timeout to MESSAGE.
const (
	MinVersion = 1 // the oldest this package speaks
	Version    = 2 // the newest this package speaks
)

// Negotiate returns the minor version a session runs at when the device
// offers up to offered: the highest both sides speak. It reports false when
// there is none (the device is older than MinVersion): the relay then
// refuses with ReasonVersion.
func Negotiate(offered uint8) (uint8, bool) {
	v := min(offered, Version)
	return v, v >= MinVersion
}

// HeaderLen is the size of a frame header: type (1) + payload length (4).
const HeaderLen = 5

// Size limits of the protocol itself. The relay's configured body limit is
// lower than MaxPayload and is announced in Welcome.
const (
	MaxControlPayload = 1024    // login, welcome, refuse, rotate, rotated, goaway
	MaxModeLen        = 32      // mode names are short ASCII words
	MaxQueryLen       = 255     // a MESSAGE's query, from version 2
	MaxReplyBody      = 1 << 16 // a device's reply body
	MaxPayload        = 1 << 20 // hard cap on any frame the decoder accepts
	maxAgentLen       = 64
	maxTextLen        = 255
)

// FrameType identifies a frame.
type FrameType byte

// Frame types. Control frames travel on the control stream (the first
// bidirectional stream, opened by the device); Message and Reply travel on
// a message stream, one pair per stream.
const (
	FrameLogin   FrameType = 0x01 // device -> relay, first frame of the control stream
	FrameWelcome FrameType = 0x02 // relay -> device, login accepted
	FrameRefuse  FrameType = 0x03 // relay -> device, login or rotation refused
	FrameRotate  FrameType = 0x04 // device -> relay, rebind the session to a new token
	FrameRotated FrameType = 0x05 // relay -> device, rotation done
	FrameGoAway  FrameType = 0x06 // relay -> device, leave and reconnect later
	FrameMessage FrameType = 0x10 // relay -> device, one webhook
	FrameReply   FrameType = 0x11 // device -> relay, the device's answer
)

func (t FrameType) String() string {
	switch t {
	case FrameLogin:
		return "LOGIN"
	case FrameWelcome:
		return "WELCOME"
	case FrameRefuse:
		return "REFUSE"
	case FrameRotate:
		return "ROTATE"
	case FrameRotated:
		return "ROTATED"
	case FrameGoAway:
		return "GOAWAY"
	case FrameMessage:
		return "MESSAGE"
	case FrameReply:
		return "REPLY"
	}
	return fmt.Sprintf("frame(0x%02x)", byte(t))
}

// Errors of the decoder. Each is wrapped with detail; test with errors.Is.
var (
	ErrMalformed  = errors.New("wire: malformed frame")
	ErrTooLarge   = errors.New("wire: frame too large")
	ErrUnexpected = errors.New("wire: unexpected frame")
)

// Reason says why the relay refused a login or rotation, or sent GoAway.
type Reason byte

// Reasons. Devices must treat unknown values like ReasonInternal.
const (
	ReasonVersion  Reason = 1 // unsupported protocol version
	ReasonToken    Reason = 2 // token missing, malformed or too weak
	ReasonInUse    Reason = 3 // rotation target already bound to another session
	ReasonDraining Reason = 4 // relay is shutting down or restarting
	ReasonFull     Reason = 5 // relay at its device capacity
	ReasonLimited  Reason = 6 // too many attempts; slow down
	ReasonProtocol Reason = 7 // a frame broke the protocol
	ReasonReplaced Reason = 8 // another session logged in with the same token
	ReasonInternal Reason = 9 // relay-side failure
)

func (r Reason) String() string {
	switch r {
	case ReasonVersion:
		return "unsupported_version"
	case ReasonToken:
		return "bad_token"
	case ReasonInUse:
		return "token_in_use"
	case ReasonDraining:
		return "draining"
	case ReasonFull:
		return "relay_full"
	case ReasonLimited:
		return "rate_limited"
	case ReasonProtocol:
		return "protocol_error"
	case ReasonReplaced:
		return "replaced"
	case ReasonInternal:
		return "internal"
	}
	return fmt.Sprintf("reason(%d)", byte(r))
}

// Connection close codes (QUIC APPLICATION_CLOSE / WebTransport session
// close codes) the relay uses.
const (
	CloseNormal       = 0x0
	CloseProtocol     = 0x1 // malformed or unexpected frame
	CloseRefused      = 0x2 // login refused; a Refuse frame said why
	CloseReplaced     = 0x3 // another session took the token over
	CloseGoingAway    = 0x4 // after GoAway
	CloseLoginTimeout = 0x5 // no login within the relay's login timeout
	CloseInternal     = 0x6
)

// Stream reset codes (RESET_STREAM / STOP_SENDING) on message streams.
const (
	StreamCancelled = 0x1 // the relay gave up on the message (ack timeout, caller gone)
	StreamProtocol  = 0x2 // the peer sent a malformed frame
	StreamTooLarge  = 0x3 // the peer's frame exceeded a limit
)

// Login is the device's first frame.
type Login struct {
	Version uint8
	Token   []byte
	Agent   string // optional free text naming the device software; never secret
}

// Welcome accepts a login and tells the device the relay's limits.
type Welcome struct {
	Version     uint8
	MaxBody     uint32        // largest Message body the relay forwards
	MaxInflight uint16        // messages the relay keeps open at once; allow that many streams
	IdleTimeout time.Duration // relay's QUIC idle timeout, in whole seconds on the wire
}

// Refuse declines a login (then the relay closes the connection) or a
// rotation (then the session goes on with the old token).
type Refuse struct {
	Reason  Reason
	Message string
}

// Rotate asks the relay to rebind the live session to a new token.
type Rotate struct {
	Token []byte
}

// GoAway tells the device to disconnect and come back after ReconnectAfter,
// to Redirect if it is not empty (host:port), else to the same relay.
type GoAway struct {
	Reason         Reason
	ReconnectAfter time.Duration // milliseconds on the wire
	Redirect       string
	Message        string
}

// Message carries one webhook to the device.
type Message struct {
	Mode string
	// Query is the webhook's parameters for the device, URL-encoded
	// ("name=weather"), printable ASCII, at most MaxQueryLen bytes; ""
	// for none. From version 2: a session at version 1 cannot carry one.
	Query string
	// Timeout is how long the relay waits for the REPLY from when it sent
	// the MESSAGE, in whole milliseconds; 0 when it did not say. From
	// version 2.
	Timeout time.Duration
	Body    []byte
}

// MessageOverhead is the most a MESSAGE payload at version v holds besides
// its body: what a device adds to WELCOME.max_body for its read limit.
func MessageOverhead(v uint8) int {
	if v < 2 {
		return 1 + MaxModeLen
	}
	return 1 + MaxModeLen + 1 + MaxQueryLen + 4
}

// Reply is the device's answer to a Message: an HTTP-like status (200-599)
// and a JSON body.
type Reply struct {
	Status uint16
	Body   []byte
}

// AppendHeader appends a frame header for a payload of n bytes.
func AppendHeader(b []byte, t FrameType, n int) []byte {
	return binary.BigEndian.AppendUint32(append(b, byte(t)), uint32(n))
}

// Append encodes the frame. The caller checks the token (CheckToken); a
// token over 255 bytes is a programming error and panics. Agent is cut to
// 64 bytes.
func (f Login) Append(b []byte) []byte {
	agent := f.Agent[:min(len(f.Agent), maxAgentLen)]
	b = AppendHeader(b, FrameLogin, 3+len(f.Token)+len(agent))
	b = append(b, f.Version, shortLen(len(f.Token), "token"))
	b = append(b, f.Token...)
	b = append(b, byte(len(agent)))
	return append(b, agent...)
}

// shortLen is the u8 length prefix of a field that callers keep short.
func shortLen(n int, what string) byte {
	if n > 0xff {
		panic("wire: " + what + " longer than 255 bytes")
	}
	return byte(n)
}

// nonNegative clamps a duration on its way to an unsigned field.
func nonNegative(d time.Duration) time.Duration { return max(d, 0) }

// Append encodes the frame.
func (f Welcome) Append(b []byte) []byte {
	b = AppendHeader(b, FrameWelcome, 9)
	b = append(b, f.Version)
	b = binary.BigEndian.AppendUint32(b, f.MaxBody)
	b = binary.BigEndian.AppendUint16(b, f.MaxInflight)
	return binary.BigEndian.AppendUint16(b, uint16(min(nonNegative(f.IdleTimeout)/time.Second, 0xffff)))
}

// Append encodes the frame. Message is cut to 255 bytes.
func (f Refuse) Append(b []byte) []byte {
	msg := clip(f.Message)
	b = AppendHeader(b, FrameRefuse, 2+len(msg))
	b = append(b, byte(f.Reason), byte(len(msg)))
	return append(b, msg...)
}

// Append encodes the frame.
func (f Rotate) Append(b []byte) []byte {
	b = AppendHeader(b, FrameRotate, 1+len(f.Token))
	b = append(b, shortLen(len(f.Token), "token"))
	return append(b, f.Token...)
}

// AppendRotated encodes a Rotated frame (no payload).
func AppendRotated(b []byte) []byte { return AppendHeader(b, FrameRotated, 0) }

// Append encodes the frame. Redirect and Message are cut to 255 bytes.
func (f GoAway) Append(b []byte) []byte {
	redirect, msg := clip(f.Redirect), clip(f.Message)
	b = AppendHeader(b, FrameGoAway, 7+len(redirect)+len(msg))
	b = append(b, byte(f.Reason))
	b = binary.BigEndian.AppendUint32(b, uint32(min(nonNegative(f.ReconnectAfter)/time.Millisecond, 0xffffffff)))
	b = append(b, byte(len(redirect)))
	b = append(b, redirect...)
	b = append(b, byte(len(msg)))
	return append(b, msg...)
}

// AppendHeader encodes everything of the frame at version v but its body,
// so that the body can be written straight from the caller's buffer (the
// length counts len(f.Body)). At version 1 Query and Timeout are not
// encoded: the sender checks that a message with a query goes to a
// session at version 2 or later. A mode or query over 255 bytes panics.
func (f Message) AppendHeader(b []byte, v uint8) []byte {
	n := 1 + len(f.Mode) + len(f.Body)
	if v >= 2 {
		n += 1 + len(f.Query) + 4
	}
	b = AppendHeader(b, FrameMessage, n)
	b = append(b, shortLen(len(f.Mode), "mode"))
	b = append(b, f.Mode...)
	if v >= 2 {
		b = append(b, shortLen(len(f.Query), "query"))
		b = append(b, f.Query...)
		b = binary.BigEndian.AppendUint32(b, uint32(min(nonNegative(f.Timeout)/time.Millisecond, 0xffffffff)))
	}
	return b
}

// AppendAt encodes the frame at version v (see AppendHeader).
func (f Message) AppendAt(b []byte, v uint8) []byte {
	return append(f.AppendHeader(b, v), f.Body...)
}

// Append encodes the frame at this package's Version.
func (f Message) Append(b []byte) []byte { return f.AppendAt(b, Version) }

// Append encodes the frame.
func (f Reply) Append(b []byte) []byte {
	b = AppendHeader(b, FrameReply, 2+len(f.Body))
	b = binary.BigEndian.AppendUint16(b, f.Status)
	return append(b, f.Body...)
}

func clip(s string) string {
	if len(s) > maxTextLen {
		return s[:maxTextLen]
	}
	return s
}

// ReadFrame reads one frame from r. It refuses payloads over limit bytes
// (capped at MaxPayload) before reading them. A stream that ends
// cleanly before a frame begins gives io.EOF; one that ends inside a frame
// gives io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, limit int) (FrameType, []byte, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	t := FrameType(hdr[0])
	n := binary.BigEndian.Uint32(hdr[1:])
	if lim := max(0, min(limit, MaxPayload)); uint64(n) > uint64(lim) {
		return t, nil, fmt.Errorf("%w: %s payload of %d bytes exceeds %d", ErrTooLarge, t, n, lim)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return t, nil, err
	}
	return t, p, nil
}

// payload walks a frame payload; the first short read sets err and makes
// every later read return zero values.
type payload struct {
	b   []byte
	t   FrameType
	err error
}

func (p *payload) fail(what string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s: %s", ErrMalformed, p.t, what)
	}
}

func (p *payload) bytes(n int, what string) []byte {
	if p.err != nil || n > len(p.b) {
		p.fail("short " + what)
		return nil
	}
	v := p.b[:n:n]
	p.b = p.b[n:]
	return v
}

func (p *payload) u8(what string) byte {
	if v := p.bytes(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (p *payload) u16(what string) uint16 {
	if v := p.bytes(2, what); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (p *payload) u32(what string) uint32 {
	if v := p.bytes(4, what); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

// short reads a length-prefixed (u8) field.
func (p *payload) short(what string) []byte {
	return p.bytes(int(p.u8(what+" length")), what)
}

// done fails if bytes remain: frames have no optional trailing data in v1.
func (p *payload) done() error {
	if p.err == nil && len(p.b) > 0 {
		p.fail(fmt.Sprintf("%d trailing bytes", len(p.b)))
	}
	return p.err
}

func text(b []byte, what string, p *payload) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			p.fail(what + " is not printable ASCII")
			return ""
		}
	}
	return string(b)
}

// ParseLogin decodes a Login payload. It checks the shape only; the token
// rules are CheckToken's. A LOGIN that offers a version newer than this
// package's may carry fields that version defines after the agent: they
// are skipped, and the session runs at the version both speak.
func ParseLogin(b []byte) (Login, error) {
	p := payload{b: b, t: FrameLogin}
	f := Login{Version: p.u8("version"), Token: p.short("token")}
	agent := p.short("agent")
	if len(agent) > maxAgentLen {
		p.fail("agent longer than 64 bytes")
	}
	f.Agent = text(agent, "agent", &p)
	if p.err == nil && f.Version > Version {
		p.b = nil
	}
	return f, p.done()
}

// ParseWelcome decodes a Welcome payload.
func ParseWelcome(b []byte) (Welcome, error) {
	p := payload{b: b, t: FrameWelcome}
	f := Welcome{Version: p.u8("version"), MaxBody: p.u32("max body"), MaxInflight: p.u16("max inflight")}
	f.IdleTimeout = time.Duration(p.u16("idle timeout")) * time.Second
	return f, p.done()
}

// ParseRefuse decodes a Refuse payload.
func ParseRefuse(b []byte) (Refuse, error) {
	p := payload{b: b, t: FrameRefuse}
	f := Refuse{Reason: Reason(p.u8("reason"))}
	f.Message = text(p.short("message"), "message", &p)
	return f, p.done()
}

// ParseRotate decodes a Rotate payload.
func ParseRotate(b []byte) (Rotate, error) {
	p := payload{b: b, t: FrameRotate}
	f := Rotate{Token: p.short("token")}
	return f, p.done()
}

// ParseGoAway decodes a GoAway payload.
func ParseGoAway(b []byte) (GoAway, error) {
	p := payload{b: b, t: FrameGoAway}
	f := GoAway{Reason: Reason(p.u8("reason"))}
	f.ReconnectAfter = time.Duration(p.u32("reconnect after")) * time.Millisecond
	f.Redirect = text(p.short("redirect"), "redirect", &p)
	f.Message = text(p.short("message"), "message", &p)
	return f, p.done()
}

// ParseMessage decodes a Message payload of a session at version v. Body
// aliases b.
func ParseMessage(b []byte, v uint8) (Message, error) {
	p := payload{b: b, t: FrameMessage}
	mode := p.short("mode")
	if len(mode) == 0 || len(mode) > MaxModeLen {
		p.fail("mode length outside 1..32")
	}
	f := Message{Mode: text(mode, "mode", &p)}
	if v >= 2 {
		f.Query = text(p.short("query"), "query", &p)
		if _, err := url.ParseQuery(f.Query); p.err == nil && (err != nil || strings.ContainsRune(f.Query, ' ')) {
			p.fail("query is not URL-encoded")
		}
		f.Timeout = time.Duration(p.u32("timeout")) * time.Millisecond
	}
	if p.err == nil {
		f.Body = p.b
	}
	return f, p.err
}

// ParseReply decodes a Reply payload. Body aliases b.
func ParseReply(b []byte) (Reply, error) {
	p := payload{b: b, t: FrameReply}
	f := Reply{Status: p.u16("status")}
	if p.err == nil && (f.Status < 200 || f.Status > 599) {
		p.fail(fmt.Sprintf("status %d outside 200..599", f.Status))
	}
	if len(p.b) > MaxReplyBody {
		p.fail("reply body over 64 KiB")
	}
	if p.err == nil {
		f.Body = p.b
	}
	return f, p.err
}

// Expect returns ErrUnexpected unless got is want.
func Expect(got, want FrameType) error {
	if got != want {
		return fmt.Errorf("%w: got %s, want %s", ErrUnexpected, got, want)
	}
	return nil
}
