package main

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite depaware.txt with the packages cmd/device links now (TestDepaware)")

// depawareFile lists, exactly, the packages outside the standard library
// that the device binary links: tailscale's depaware.txt. The standard
// library is left out because its internal and vendored packages change
// with every Go release.
const depawareFile = "depaware.txt"

const depawareHeader = `# Packages outside the standard library that cmd/device links (go list -deps),
# on every platform below unless the line names those it is linked on.
# TestDepaware fails when they change. When a change is meant, rewrite this
# file with: go test ./cmd/device -run TestDepaware -update
`

// platforms the agent is built for (a server, a Raspberry Pi 3 or later, an
// older Pi or a router): the packages linked differ slightly between them.
var platforms = []string{"linux/amd64", "linux/arm64", "linux/arm"}

const module = "github.com/pixelrelay/relay/"

// forbidden are packages the device binary must never link, whatever
// depaware.txt says, nor anything under them: the relay's router,
// sessions, limits, webhook frontend, node and cluster, and the libraries
// only the relay needs (certs' autocert and file watcher among them).
// Each must be a package the module can build, so the list cannot go stale
// (TestForbiddenPackagesExist).
var forbidden = []string{
	module + "router", module + "session", module + "limit", module + "webhook", module + "httperr", module + "server", module + "cluster",
	"github.com/valyala/fasthttp", "github.com/fasthttp/websocket", "github.com/prometheus/client_golang/prometheus",
	"golang.org/x/crypto/acme", "golang.org/x/crypto/acme/autocert", "github.com/fsnotify/fsnotify",
	"github.com/nats-io/nats.go", "golang.org/x/time/rate",
}

// TestDepaware: the device binary links exactly the packages depaware.txt
// lists (the protocol, the transports, the device side, awtrix, the trust
// helpers, the commands' flag convention and their libraries) and none of
// the forbidden ones. Firmware-sized agents and the team's layering depend
// on it; a new dependency is a decision, made visible in the diff.
func TestDepaware(t *testing.T) {
	got := linked(t)
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if f := forbiddenBy(p); f != "" {
			t.Errorf("cmd/device links %s (forbidden: %s)", p, f)
		}
	}
	if t.Failed() {
		t.FailNow() // not worth writing down, nor diffing
	}
	if *update {
		if err := os.WriteFile(depawareFile, formatDepaware(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d packages", depawareFile, len(got))
		return
	}
	data, err := os.ReadFile(depawareFile)
	if err != nil {
		t.Fatalf("%v (create it with: go test ./cmd/device -run TestDepaware -update)", err)
	}
	want, err := parseDepaware(data)
	if err != nil {
		t.Fatalf("%s: %v", depawareFile, err)
	}
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if f := forbiddenBy(p); f != "" {
			t.Errorf("%s lists %s (forbidden: %s)", depawareFile, p, f)
		}
	}
	if d := diffDepaware(want, got); d != "" {
		t.Errorf("cmd/device's packages differ from %s:\n%s"+
			"If the change is meant, rewrite the file: go test ./cmd/device -run TestDepaware -update", depawareFile, d)
	}
}

// TestForbiddenPackagesExist: every forbidden path is a package the
// module resolves, so that a renamed package or a dropped library fails
// here instead of leaving a check that can no longer fail.
func TestForbiddenPackagesExist(t *testing.T) {
	out := goList(t, "", append([]string{"-f", "{{.ImportPath}}"}, forbidden...)...)
	if got := strings.Fields(out); !slices.Equal(got, forbidden) {
		t.Fatalf("go list of the forbidden packages printed %q, want %q", got, forbidden)
	}
}

// TestDepawareDiff: the failure message names each package added,
// removed or linked on other platforms than the file says.
func TestDepawareDiff(t *testing.T) {
	want, err := parseDepaware([]byte(depawareHeader + "a\nb linux/amd64\nc\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{"a": nil, "b": {"linux/amd64", "linux/arm64"}, "d": {"linux/arm"}}
	d := diffDepaware(want, got)
	for _, line := range []string{
		"+ d linux/arm (linked now, not in depaware.txt)\n",
		"- c (in depaware.txt, no longer linked)\n",
		"~ b: depaware.txt says linux/amd64, now linux/amd64 linux/arm64\n",
	} {
		if !strings.Contains(d, line) {
			t.Errorf("the diff does not say %q:\n%s", line, d)
		}
	}
	if strings.Contains(d, " a") {
		t.Errorf("the diff names a, which did not change:\n%s", d)
	}
	if d := diffDepaware(got, got); d != "" {
		t.Errorf("a list differs from itself:\n%s", d)
	}
	back, err := parseDepaware(formatDepaware(got))
	if err != nil || diffDepaware(back, got) != "" {
		t.Errorf("the written form does not read back: %v\n%s", err, formatDepaware(got))
	}
	if _, err := parseDepaware([]byte("a linux/amd64 linux/sparc\n")); err == nil {
		t.Error("a platform the test does not list was accepted")
	}
}

// linked returns every package outside the standard library that
// cmd/device links on some platform, with the platforms it is linked on,
// or nil when that is all of them.
func linked(t *testing.T) map[string][]string {
	t.Helper()
	on := map[string][]string{}
	for _, pl := range platforms {
		goos, goarch, _ := strings.Cut(pl, "/")
		out := goList(t, "GOOS="+goos+" GOARCH="+goarch, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
		pkgs := strings.Fields(out)
		if !slices.Contains(pkgs, module+"wire") {
			t.Fatalf("go list -deps for %s printed %d packages, none of them wire: the check would see nothing", pl, len(pkgs))
		}
		for _, p := range pkgs {
			on[p] = append(on[p], pl)
		}
	}
	for p, pls := range on {
		if len(pls) == len(platforms) {
			on[p] = nil
		}
	}
	return on
}

// goList runs go list with args; env is "" or space-separated VAR=value
// settings for it.
func goList(t *testing.T, env string, args ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test lists the import graph with the go command, which is not on PATH: %v", err)
	}
	cmd := exec.Command(gobin, append([]string{"list"}, args...)...)
	// Cgo changes nothing outside the standard library; off, cross-platform
	// listings need no C toolchain and match make static.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Env = append(cmd.Env, strings.Fields(env)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s (%s): %v\n%s", strings.Join(args, " "), env, err, stderr.String())
	}
	return string(out)
}

// forbiddenBy returns the forbidden path p is, else one it is under, or "".
func forbiddenBy(p string) string {
	if slices.Contains(forbidden, p) {
		return p
	}
	for _, f := range forbidden {
		if strings.HasPrefix(p, f+"/") {
			return f
		}
	}
	return ""
}

func formatDepaware(pkgs map[string][]string) []byte {
	var b bytes.Buffer
	b.WriteString(depawareHeader)
	for _, p := range slices.Sorted(maps.Keys(pkgs)) {
		b.WriteString(strings.Join(append([]string{p}, pkgs[p]...), " ") + "\n")
	}
	return b.Bytes()
}

// parseDepaware reads the file's lines: a package, then the platforms it
// is linked on when not all; # starts a comment.
func parseDepaware(data []byte) (map[string][]string, error) {
	pkgs := map[string][]string{}
	for i, line := range strings.Split(string(data), "\n") {
		if line, _, _ = strings.Cut(line, "#"); strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if _, dup := pkgs[f[0]]; dup {
			return nil, fmt.Errorf("line %d: %s listed twice", i+1, f[0])
		}
		for _, pl := range f[1:] {
			if !slices.Contains(platforms, pl) {
				return nil, fmt.Errorf("line %d: platform %q: want one of %v", i+1, pl, platforms)
			}
		}
		if len(f) == 1 {
			pkgs[f[0]] = nil
		} else {
			pkgs[f[0]] = f[1:]
		}
	}
	return pkgs, nil
}

// diffDepaware says, a line each in package order, what got has that want
// has not (+), the reverse (-), and what is linked on other platforms (~).
func diffDepaware(want, got map[string][]string) string {
	all := map[string]bool{}
	for p := range want {
		all[p] = true
	}
	for p := range got {
		all[p] = true
	}
	where := func(pls []string) string {
		if pls == nil {
			return "every platform"
		}
		return strings.Join(pls, " ")
	}
	var b strings.Builder
	for _, p := range slices.Sorted(maps.Keys(all)) {
		w, inWant := want[p]
		g, inGot := got[p]
		switch {
		case !inWant:
			fmt.Fprintf(&b, "+ %s (linked now, not in %s)\n", strings.Join(append([]string{p}, g...), " "), depawareFile)
		case !inGot:
			fmt.Fprintf(&b, "- %s (in %s, no longer linked)\n", strings.Join(append([]string{p}, w...), " "), depawareFile)
		case !slices.Equal(w, g):
			fmt.Fprintf(&b, "~ %s: %s says %s, now %s\n", p, depawareFile, where(w), where(g))
		}
	}
	return b.String()
}
