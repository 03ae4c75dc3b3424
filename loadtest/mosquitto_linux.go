package loadtest

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// raiseNoFile gives process pid this process's descriptor limit: Go
// raised its own soft limit to the hard one at start, and a child gets
// the soft limit from before.
func raiseNoFile(pid int) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("loadtest: descriptor limit: %w", err)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		return fmt.Errorf("loadtest: raise pid %d's descriptor limit to %d: %w", pid, lim.Cur, err)
	}
	return nil
}
