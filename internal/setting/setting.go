// Package setting is how the relay's configurations say which setting
// cannot work. Every Config.Check (server, session, webhook, cluster,
// certs) reports the first such setting as an *Error that names it as
// cmd/relay's flag does, so that the command, which only parses, can point
// at the flag to fix, and a start and --check-config say the same.
package setting

import "fmt"

// Error is a setting that cannot work.
type Error struct {
	// Name is the setting's flag, without dashes ("ack-timeout"); a
	// setting no flag sets has its Go field name ("ControlWriteTimeout").
	Name string
	Err  error // what is wrong with it
}

func (e *Error) Error() string { return e.Name + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error for the setting name, its message formatted as
// fmt.Errorf does (%w wraps).
func Errorf(name, format string, args ...any) error {
	return &Error{Name: name, Err: fmt.Errorf(format, args...)}
}
