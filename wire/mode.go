package wire

// Modes are the AWTRIX API endpoints a webhook may name in ?mode=. They are
// the same words as the clock's own HTTP and MQTT API.
var Modes = []string{"draw", "basics", "app", "settings", "notify", "customapp", "temporaryapp"}

// ParseMode returns the canonical string for the mode m, and false if m is
// not one of Modes. It does not allocate.
func ParseMode(m []byte) (string, bool) {
	for _, s := range Modes {
		if string(m) == s {
			return s, true
		}
	}
	return "", false
}

// ValidMode reports whether m is one of Modes.
func ValidMode(m []byte) bool {
	_, ok := ParseMode(m)
	return ok
}
