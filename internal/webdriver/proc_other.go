//go:build !unix

package webdriver

import "os/exec"

// setProcessGroup does nothing here: without process groups, Close ends
// chromedriver only, which ends its browsers when it deletes the sessions.
func setProcessGroup(*exec.Cmd) {}

// signalGroup kills cmd's process; there is no gentler signal to send.
func signalGroup(cmd *exec.Cmd, _ bool) {
	cmd.Process.Kill()
}
