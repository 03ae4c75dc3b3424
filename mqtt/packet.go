package mqtt

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Protocol errors. Each ends the connection: MQTT 3.1.1 has no way to
// refuse a packet but to close (§4.8).
var (
	errMalformed = errors.New("mqtt: malformed packet")
	errTooLarge  = errors.New("mqtt: packet over the size limit")
	errUnexpect  = errors.New("mqtt: packet not allowed here")
)

// readPacket reads one control packet of at most max bytes after the fixed
// header. The framing is ours and paho's packets decodes the fields: paho's
// own ReadPacket allocates whatever length a peer claims and takes a fifth
// length byte, and its field decoders accept a string longer than what is
// left. Here the length is bounded before anything is allocated, a length
// that does not end in four bytes (§2.2.3) is malformed, and the body is
// read through a reader that fails a short read.
func readPacket(r *bufio.Reader, max int) (packets.ControlPacket, error) {
	b, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	n, err := readLength(r)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errTooLarge, n, max)
	}
	fh := packets.FixedHeader{
		MessageType:     b >> 4,
		Dup:             b&0x08 != 0,
		Qos:             (b >> 1) & 0x03,
		Retain:          b&0x01 != 0,
		RemainingLength: n,
	}
	if err := checkFlags(fh.MessageType, b&0x0f); err != nil {
		return nil, err
	}
	cp, err := packets.NewControlPacketWithHeader(fh)
	if err != nil {
		return nil, fmt.Errorf("%w: type %d", errMalformed, fh.MessageType)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if fh.MessageType == packets.Connect {
		if p, ok := otherLevel(body); ok {
			return p, nil
		}
	}
	sr := &strictReader{b: body}
	if err := cp.Unpack(sr); err != nil || sr.err != nil {
		return nil, fmt.Errorf("%w: %s", errMalformed, packetName(fh.MessageType))
	}
	if len(sr.b) > 0 && fh.MessageType != packets.Publish {
		return nil, fmt.Errorf("%w: %d bytes after the %s", errMalformed, len(sr.b), packetName(fh.MessageType))
	}
	if err := checkStrings(cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// otherLevel reads a CONNECT of MQTT at a level other than 3.1.1's (4):
// MQTT 5's has properties a 3.1.1 decoder would take for a malformed
// packet, but §3.1.2.2 wants it answered CONNACK 1, so only the protocol
// name and level are decoded (ok) and Validate refuses them.
func otherLevel(body []byte) (*packets.ConnectPacket, bool) {
	const name = "\x00\x04MQTT"
	if len(body) < len(name)+1 || string(body[:len(name)]) != name || body[len(name)] == 4 {
		return nil, false
	}
	p := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	p.ProtocolName, p.ProtocolVersion = "MQTT", body[len(name)]
	return p, true
}

// readLength decodes the remaining length (§2.2.3): at most four bytes.
func readLength(r io.ByteReader) (int, error) {
	n, shift := 0, 0
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			return n, nil
		}
		shift += 7
	}
	return 0, fmt.Errorf("%w: remaining length longer than four bytes", errMalformed)
}

// checkFlags enforces the fixed header's flag bits (§2.2.2): fixed for all
// but PUBLISH, whose QoS may not be 3.
func checkFlags(t, flags byte) error {
	want := byte(0)
	switch t {
	case packets.Publish:
		if flags&0x06 == 0x06 {
			return fmt.Errorf("%w: PUBLISH with QoS 3", errMalformed)
		}
		return nil
	case packets.Pubrel, packets.Subscribe, packets.Unsubscribe:
		want = 0x02
	}
	if flags != want {
		return fmt.Errorf("%w: %s with flags %#x", errMalformed, packetName(t), flags)
	}
	return nil
}

// checkStrings enforces UTF-8 without U+0000 in topics and filters (§1.5.3).
func checkStrings(cp packets.ControlPacket) error {
	var ss []string
	switch p := cp.(type) {
	case *packets.PublishPacket:
		ss = []string{p.TopicName}
	case *packets.SubscribePacket:
		ss = p.Topics
		if len(ss) == 0 {
			return fmt.Errorf("%w: SUBSCRIBE without a filter", errMalformed)
		}
	case *packets.UnsubscribePacket:
		ss = p.Topics
		if len(ss) == 0 {
			return fmt.Errorf("%w: UNSUBSCRIBE without a filter", errMalformed)
		}
	case *packets.ConnectPacket:
		ss = []string{p.ProtocolName, p.ClientIdentifier, p.Username, p.WillTopic}
	}
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%w: a string is not UTF-8", errMalformed)
		}
		for i := 0; i < len(s); i++ {
			if s[i] == 0 {
				return fmt.Errorf("%w: a string holds U+0000", errMalformed)
			}
		}
	}
	return nil
}

// strictReader fails a Read it cannot fill: paho's decoders call Read, not
// io.ReadFull, and would take a short read for a whole field.
type strictReader struct {
	b   []byte
	err error
}

func (s *strictReader) Read(p []byte) (int, error) {
	if len(p) > len(s.b) {
		s.err = io.ErrUnexpectedEOF
		return 0, s.err
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

var packetNames = [...]string{"reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "reserved"}

func packetName(t byte) string { return packetNames[t&0x0f] }
