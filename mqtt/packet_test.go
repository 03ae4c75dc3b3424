package mqtt

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func encode(t testing.TB, p packets.ControlPacket) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadPacket(t *testing.T) {
	connect := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	connect.ProtocolName, connect.ProtocolVersion, connect.ClientIdentifier, connect.Keepalive = "MQTT", 4, "awtrix_1a2b3c", 15
	connect.UsernameFlag, connect.Username, connect.PasswordFlag, connect.Password = true, "clock", true, []byte("secret")
	good := encode(t, connect)
	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID, sub.Topics, sub.Qoss = 1, []string{"p/notify"}, []byte{0}
	goodSub := encode(t, sub)

	for _, tc := range []struct {
		name string
		in   []byte
		want error // nil: a packet
	}{
		{"connect", good, nil},
		{"subscribe", goodSub, nil},
		{"pingreq", []byte{0xc0, 0x00}, nil},
		{"over the limit", []byte{0x30, 0x80, 0x80, 0x01}, errTooLarge},                 // 16384 > 1024
		{"length never ends", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, errMalformed}, // a fifth length byte
		{"length cut short", []byte{0x30, 0xff}, io.ErrUnexpectedEOF},
		{"body cut short", good[:len(good)-3], io.ErrUnexpectedEOF},
		{"subscribe flags", append([]byte{0x80}, goodSub[1:]...), errMalformed}, // §3.8.1: 0010
		{"pingreq flags", []byte{0xc1, 0x00}, errMalformed},
		{"qos 3", []byte{0x36, 0x03, 0x00, 0x01, 'a'}, errMalformed},
		{"reserved type", []byte{0xf0, 0x00}, errMalformed},
		{"string past the end", []byte{0x30, 0x03, 0x00, 0x09, 'a'}, errMalformed},
		{"bytes after pingreq", []byte{0xc0, 0x01, 0x00}, errMalformed},
		{"subscribe with no filter", []byte{0x82, 0x02, 0x00, 0x01}, errMalformed},
		{"topic not utf-8", []byte{0x30, 0x04, 0x00, 0x02, 0xff, 0xfe}, errMalformed},
		{"topic with NUL", []byte{0x30, 0x04, 0x00, 0x02, 'a', 0x00}, errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := readPacket(bufio.NewReader(bytes.NewReader(tc.in)), 1024)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("err %v, want a packet", err)
			case tc.want == nil && p == nil:
				t.Fatal("no packet")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadPacketKeepsConnectFields(t *testing.T) {
	connect := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	connect.ProtocolName, connect.ProtocolVersion, connect.ClientIdentifier, connect.Keepalive = "MQTT", 4, "awtrix_1a2b3c", 15
	connect.UsernameFlag, connect.Username, connect.PasswordFlag, connect.Password = true, "clock", true, []byte("secret")
	connect.WillFlag, connect.WillTopic, connect.WillMessage = true, "p/stats/device", []byte("offline")
	p, err := readPacket(bufio.NewReader(bytes.NewReader(encode(t, connect))), 1024)
	if err != nil {
		t.Fatal(err)
	}
	got := p.(*packets.ConnectPacket)
	if got.Keepalive != 15 || string(got.Password) != "secret" || got.Username != "clock" || got.WillTopic != "p/stats/device" || got.Validate() != packets.Accepted {
		t.Fatalf("CONNECT decoded as %+v", got)
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"p/notify", "p/notify", true},
		{"p/notify", "p/notify/dismiss", false},
		{"p/custom/#", "p/custom/weather", true},
		{"p/custom/#", "p/custom", true},
		{"p/custom/#", "p/customx", false},
		{"p/cmd/#", "p/cmd/apps/pushed/x", true},
		{"p/+/notify", "p/cmd/notify", true},
		{"p/+", "p/cmd/notify", false},
		{"#", "anything/at/all", true},
		{"a/b", "a", false},
	} {
		if got := matches(tc.filter, tc.topic); got != tc.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// FuzzReadPacket: no input panics the decoder, and every packet it takes
// was within the limit.
func FuzzReadPacket(f *testing.F) {
	connect := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	connect.ProtocolName, connect.ProtocolVersion, connect.ClientIdentifier = "MQTT", 4, "c"
	connect.UsernameFlag, connect.Username, connect.PasswordFlag, connect.Password = true, "u", true, []byte("p")
	f.Add(encode(f, connect))
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.TopicName, pub.Payload = "p/stats", []byte(`{"bat":100}`)
	f.Add(encode(f, pub))
	pub.Qos, pub.MessageID = 1, 7
	f.Add(encode(f, pub))
	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID, sub.Topics, sub.Qoss = 1, []string{"p/notify", "p/custom/#"}, []byte{0, 1}
	f.Add(encode(f, sub))
	f.Add([]byte{0xc0, 0x00})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 256
		r := bufio.NewReader(bytes.NewReader(b))
		for range 8 {
			p, err := readPacket(r, max)
			if err != nil {
				return
			}
			var out bytes.Buffer
			if err := p.Write(&out); err != nil {
				return // paho cannot encode every field it decodes (a 64 KiB string)
			}
			if out.Len() > 5+max+64 {
				t.Fatalf("took a %d-byte packet with a limit of %d", out.Len(), max)
			}
		}
	})
}
