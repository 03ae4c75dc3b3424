//go:build !linux

package loadtest

// raiseNoFile leaves the child's descriptor limit as it is: without Linux's
// prlimit, raise it before running the suite (ulimit -n).
func raiseNoFile(int) error { return nil }
