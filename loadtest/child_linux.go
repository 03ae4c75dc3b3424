package loadtest

import "syscall"

// childAttr makes the kernel kill the relay if the suite dies without
// stopping it (a crash, SIGKILL), so that no relay outlives its run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
