// Package buildinfo says which build of the relay or device is running:
// the module version and the VCS revision the Go toolchain stamped into the
// binary (runtime/debug.ReadBuildInfo). Both commands print it for
// --version; the relay also exports it as relay_build_info.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Info is one binary's build.
type Info struct {
	Version  string // module version, "(devel)" for a build from a checkout
	Revision string // VCS revision, with "+dirty" for uncommitted changes; "" if unknown
	Time     string // commit time, RFC 3339; "" if unknown
	Go       string // toolchain
}

// Read returns this binary's build.
func Read() Info {
	i := Info{Version: "(unknown)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i
	}
	i.Version = bi.Main.Version
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && i.Revision != "" {
		i.Revision += "+dirty"
	}
	return i
}

// String is the --version line: "relay (devel) rev 0123abcd… (2026-11-30T00:00:00Z) go1.26.8".
func (i Info) String() string {
	rev := i.Revision
	if rev == "" {
		rev = "unknown"
	}
	s := fmt.Sprintf("%s rev %s", i.Version, rev)
	if i.Time != "" {
		s += " (" + i.Time + ")"
	}
	return s + " " + i.Go
}
