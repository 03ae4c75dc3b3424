// Package golist lists a package's import graph with the go command, for
// the tests that pin what a package or a binary may link (the router links
// no transport, the cluster no session, the device no relay code).
//
// Only tests import this package.
package golist

import (
	"os/exec"
	"strings"
	"testing"
)

// Module is the relay's module path, with its slash.
const Module = "github.com/pixelrelay/relay/"

// Deps returns every package pkg links (go list -deps), pkg included, as
// the go command on PATH sees it. It fails tb if the go command is missing
// or fails, or if the list is too short to have checked anything.
func Deps(tb testing.TB, pkg string) []string {
	tb.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("golist: the import graph is listed with the go command, which is not on PATH: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", pkg).Output()
	if err != nil {
		tb.Fatalf("golist: go list -deps %s: %v", pkg, err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 5 {
		tb.Fatalf("golist: go list -deps %s printed %d packages; the check would see nothing", pkg, len(deps))
	}
	return deps
}
