package device

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pixelrelay/relay/wire"
)

func TestSafeHandle(t *testing.T) {
	big := []byte(`"` + strings.Repeat("a", wire.MaxReplyBody-2) + `"`) // exactly the limit
	for _, tc := range []struct {
		name       string
		status     int
		reply      []byte
		wantStatus int
		wantReply  []byte // nil: a device_error body
	}{
		{"ok", 200, []byte(`{"shown":true}`), 200, []byte(`{"shown":true}`)},
		{"lowest status", 200, []byte(`{}`), 200, []byte(`{}`)},
		{"highest status", 599, []byte(`{"e":1}`), 599, []byte(`{"e":1}`)},
		{"device error passes", 404, []byte(`{"error":"no app"}`), 404, []byte(`{"error":"no app"}`)},
		{"status 99", 99, []byte(`{}`), 500, nil},
		{"status 199", 199, []byte(`{}`), 500, nil},
		{"status 600", 600, []byte(`{}`), 500, nil},
		{"status 0", 0, nil, 500, nil},
		{"status -1", -1, []byte(`{}`), 500, nil},
		{"status above uint16", 65536 + 200, []byte(`{}`), 500, nil},
		{"empty reply", 200, nil, 200, []byte(`{}`)},
		{"empty non-nil reply", 202, []byte{}, 202, []byte(`{}`)},
		{"not JSON", 200, []byte(`shown`), 500, nil},
		{"truncated JSON", 200, []byte(`{"a":`), 500, nil},
		{"JSON scalar", 200, []byte(`true`), 200, []byte(`true`)},
		{"reply at 64 KiB", 200, big, 200, big},
		{"reply over 64 KiB", 200, append(bytes.Clone(big[:len(big)-1]), 'a', '"'), 500, nil},
		{"huge reply", 200, bytes.Repeat([]byte(" "), 1<<20), 500, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := HandlerFunc(func(context.Context, wire.Message) (int, []byte) { return tc.status, tc.reply })
			status, reply := safeHandle(context.Background(), h, wire.Message{Mode: "notify", Body: []byte(`{}`)})
			if status != tc.wantStatus {
				t.Fatalf("status %d; want %d", status, tc.wantStatus)
			}
			if tc.wantReply != nil {
				if !bytes.Equal(reply, tc.wantReply) {
					t.Fatalf("reply %.80q; want %.80q", reply, tc.wantReply)
				}
				return
			}
			var e struct{ Error, Code string }
			if err := json.Unmarshal(reply, &e); err != nil || e.Error == "" || e.Code != "device_error" {
				t.Fatalf("reply %.80q; want {\"error\":...,\"code\":\"device_error\"} (%v)", reply, err)
			}
		})
	}
}

// safeHandle passes the message through to the handler unchanged.
func TestSafeHandlePassesMessage(t *testing.T) {
	var mode, body string
	h := HandlerFunc(func(_ context.Context, m wire.Message) (int, []byte) {
		mode, body = m.Mode, string(m.Body)
		return 200, nil
	})
	safeHandle(context.Background(), h, wire.Message{Mode: "draw", Body: []byte(`{"dl":[]}`)})
	if mode != "draw" || body != `{"dl":[]}` {
		t.Fatalf("handler got %q %q", mode, body)
	}
}
