//go:build !linux

package loadtest

import "errors"

var errPinLinux = errors.New("CPU pinning needs Linux (sched_setaffinity); run without --pin")

func pinProcess(int, []int) error    { return errPinLinux }
func processCPUs(int) ([]int, error) { return nil, errPinLinux }
