package wire

// Modes are the AWTRIX API endpoints a webhook may name in ?mode=: the
// words of the clocks' own HTTP and MQTT APIs. docs/API.md gives each
// one's body and what the reference agent calls on the clock.
var Modes = []string{
	// The original AWTRIX cloud's modes, with AWTRIX 2 bodies.
	"draw", "basics", "app", "settings", "notify", "customapp", "temporaryapp",
	// AWTRIX 3's endpoints that change the clock.
	"dismiss", "indicator1", "indicator2", "indicator3", "moodlight",
	"sound", "rtttl", "r2d2", "sleep", "reboot", "power", "switch",
	"nextapp", "previousapp", "apps", "reorder", "custom",
	// AWTRIX 3's reads: the answer is the clock's JSON.
	"stats", "screen", "loop", "effects", "transitions",
	// Destructive: an agent runs them only when its owner allowed it.
	"erase", "resetSettings", "doupdate",
}

// readModes are the modes that read the clock: a webhook may GET them.
// settings and apps read with an empty body and write with one.
var readModes = []string{"stats", "screen", "loop", "effects", "transitions", "settings", "apps"}

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

// IsRead reports whether mode reads the clock, so that a webhook may be a
// GET (a message with an empty body).
func IsRead(mode string) bool {
	for _, s := range readModes {
		if mode == s {
			return true
		}
	}
	return false
}

// TakesName reports whether mode takes the webhook parameter name (AWTRIX
// 3's way of naming a custom app), which travels in a MESSAGE's query.
func TakesName(mode string) bool { return mode == "custom" }
