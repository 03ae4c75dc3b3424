//go:build unix

package webdriver

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts cmd as the leader of a new process group, which the
// browsers it starts join.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends SIGTERM, or SIGKILL if kill, to cmd's process group.
func signalGroup(cmd *exec.Cmd, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	syscall.Kill(-cmd.Process.Pid, sig) // ESRCH once the group is gone
}
