package wire

import "testing"

func TestValidMode(t *testing.T) {
	for _, m := range Modes {
		if !ValidMode([]byte(m)) {
			t.Errorf("ValidMode(%q) = false for a member of Modes", m)
		}
		// Every mode must fit a Message frame.
		if _, err := ParseMessage(Message{Mode: m}.Append(nil)[HeaderLen:], Version); err != nil {
			t.Errorf("mode %q does not fit a Message frame: %v", m, err)
		}
	}
	for _, m := range []string{"", "Draw", "DRAW", "draw ", " draw", "draw\x00", "drawx", "dra", "notif", "customApp", "temporary_app", "mode", "app/", "../app"} {
		if ValidMode([]byte(m)) {
			t.Errorf("ValidMode(%q) = true", m)
		}
	}
	if ValidMode(nil) {
		t.Errorf("ValidMode(nil) = true")
	}
}
