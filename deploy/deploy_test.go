// Package deploy_test checks what an operator installs: the static
// binaries `make static` builds, the systemd units, the example settings,
// the compose file and the FROM scratch image. Each is built or run for
// real; nothing here is a text comparison alone.
package deploy_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// static is where TestMain had `make static` put the binaries.
var static string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relay-static-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	static = dir
	out, err := exec.Command("make", "-C", "..", "--no-print-directory", "static", "STATIC="+dir).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "make static: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestStaticBinaries: relay, device and nats-server need nothing from the
// system (no loader, no shared library, CGO off), so they run FROM
// scratch and on any Linux; relay and device report their build.
func TestStaticBinaries(t *testing.T) {
	for _, name := range []string{"relay", "device", "nats-server"} {
		path := filepath.Join(static, name)
		f, err := elf.Open(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s asks for a program interpreter (dynamically linked)", name)
			}
		}
		if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
			t.Errorf("%s imports shared libraries %v (%v)", name, libs, err)
		}
		f.Close()
		info, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: build info: %v", name, err)
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
			t.Errorf("%s built with CGO_ENABLED=%q -trimpath=%q; want 0 and true", name, settings["CGO_ENABLED"], settings["-trimpath"])
		}
		if name == "nats-server" {
			continue
		}
		out, err := exec.Command(path, "--version").Output()
		if err != nil || !strings.HasPrefix(string(out), name+" ") || !strings.Contains(string(out), info.GoVersion) {
			t.Errorf("%s --version: %q (%v)", name, out, err)
		}
	}
}

// TestExampleSettings: the files deploy/ tells operators to copy into
// /etc are accepted by the binaries, flag name by flag name.
func TestExampleSettings(t *testing.T) {
	checkRelay(t, "--config", "relay.conf")
	// The device parses its settings before --version, so a wrong name
	// fails here.
	if out, err := exec.Command(filepath.Join(static, "device"), "--config", "device.conf", "--version").CombinedOutput(); err != nil {
		t.Errorf("device --config device.conf: %v\n%s", err, out)
	}
}

// checkRelay runs the static relay with args and --check-config, with a
// state directory of the test's own.
func checkRelay(t *testing.T, args ...string) {
	t.Helper()
	args = append(args, "--state-dir", t.TempDir(), "--check-config")
	out, err := exec.Command(filepath.Join(static, "relay"), args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration OK") {
		t.Errorf("relay %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestSystemdUnits: systemd itself checks the units (syntax, every key
// known, the programs present) and rates their exposure; the relay's
// command line in ExecStart is accepted; the relay gets a capability only
// with the 443 drop-in, and then only CAP_NET_BIND_SERVICE.
func TestSystemdUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("SKIPPED LOUDLY: systemd-analyze is not installed, so the systemd units are not verified " +
			"(apt-get install systemd; make test installs it where apt-get is available)")
	}
	dir := t.TempDir()
	units := map[string]string{"relay.service": "relay", "awtrix-device.service": "device"}
	for unit, bin := range units {
		src := strings.TrimPrefix(unit, "awtrix-")
		text := read(t, src)
		for _, want := range []string{"DynamicUser=yes", "StateDirectory=", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", src, strings.TrimSpace(want))
			}
		}
		if strings.Contains(text, "AmbientCapabilities") {
			t.Errorf("%s grants capabilities itself; only relay-443.conf may", src)
		}
		// The units name the installed binaries; systemd checks that
		// ExecStart exists, so point it at the ones just built.
		text = strings.ReplaceAll(text, "/usr/local/bin/"+bin, filepath.Join(static, bin))
		write(t, filepath.Join(dir, unit), text)
	}
	verify := func(unit string) {
		t.Helper()
		cmd := exec.Command("systemd-analyze", "verify", "--man=no", unit)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
		// verify exits 0 after a warning such as an unknown key: any
		// output is a finding.
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
		// Exposure as systemd rates it, 0 (locked down) to 10: at most 2.
		cmd = exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager", unit)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze security %s: exposure above 2.0 (%v)\n%s", unit, err, out)
		}
	}
	for unit := range units {
		verify(unit)
	}
	dropIn := read(t, "relay-443.conf")
	if !strings.Contains(dropIn, "AmbientCapabilities=CAP_NET_BIND_SERVICE\n") || !strings.Contains(dropIn, "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n") {
		t.Errorf("relay-443.conf must grant CAP_NET_BIND_SERVICE and nothing else:\n%s", dropIn)
	}
	write(t, filepath.Join(dir, "relay.service.d", "443.conf"), dropIn)
	verify("relay.service")

	// ExecStart's flags, with the example settings as /etc/relay/relay.conf.
	cmdline := execStart(read(t, "relay.service"))
	if len(cmdline) < 2 || cmdline[0] != "/usr/local/bin/relay" {
		t.Fatalf("relay.service ExecStart = %q", cmdline)
	}
	var args []string
	for _, a := range cmdline[1:] {
		switch a {
		case "/etc/relay/relay.conf":
			a = "relay.conf"
		case "--state-dir", "${STATE_DIRECTORY}": // checkRelay gives its own
			continue
		}
		args = append(args, a)
	}
	checkRelay(t, args...)
}

// execStart splits a unit's ExecStart line into words.
func execStart(unit string) []string {
	for line := range strings.Lines(unit) {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			return strings.Fields(v)
		}
	}
	return nil
}

// compose is the part of deploy/compose.yaml the test reads.
type compose struct {
	Services map[string]struct {
		Image      string
		Entrypoint []string
		Command    []string
		Ports      []string
		Volumes    []string
	}
	Volumes map[string]any
}

// TestCompose: the compose file uses only the image `make image` builds
// (nothing to pull), programs the image holds, the relay's own flags (the
// relay checks each node's command line), the image's port and volume.
func TestCompose(t *testing.T) {
	var c compose
	dec := yaml.NewDecoder(strings.NewReader(read(t, "compose.yaml")))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	image := makeVar(t, "IMAGE")
	containerfile := read(t, "../Containerfile")
	relays := 0
	for name, s := range c.Services {
		if s.Image != image {
			t.Errorf("service %s: image %q, want %q (what make image builds)", name, s.Image, image)
		}
		if len(s.Entrypoint) > 0 {
			if !strings.Contains(containerfile, "bin/static"+s.Entrypoint[0]) {
				t.Errorf("service %s: entrypoint %s is not in the image", name, s.Entrypoint[0])
			}
			continue
		}
		relays++
		checkRelay(t, s.Command...)
		for _, p := range s.Ports {
			if !strings.HasSuffix(p, ":8443/tcp") && !strings.HasSuffix(p, ":8443/udp") {
				t.Errorf("service %s: port %s does not reach the relay's 8443", name, p)
			}
		}
		for _, v := range s.Volumes {
			vol, path, _ := strings.Cut(v, ":")
			if _, ok := c.Volumes[vol]; !ok || path != "/state" {
				t.Errorf("service %s: volume %s is not a named volume on the image's /state", name, v)
			}
		}
	}
	if relays < 2 || c.Services["nats"].Entrypoint == nil {
		t.Errorf("compose.yaml runs %d relays and nats %v; want a cluster: NATS and at least two relays", relays, c.Services["nats"])
	}
}

// TestImage builds the FROM scratch image with `make image` and reads it
// back: the binaries are the static ones, the state directory belongs to
// the non-root user it runs as. (Containers cannot run on the build
// machines, so the image is checked, not started.)
func TestImage(t *testing.T) {
	engine := ""
	if _, err := exec.LookPath("podman"); err == nil && exec.Command("podman", "info").Run() == nil {
		engine = "podman"
	} else if _, err := exec.LookPath("docker"); err == nil && exec.Command("docker", "info").Run() == nil {
		engine = "docker"
	}
	if engine == "" {
		t.Skip("SKIPPED LOUDLY: neither podman nor a running docker, so the container image is not built " +
			"(apt-get install podman; make test installs it where apt-get is available)")
	}
	tag := fmt.Sprintf("localhost/pixelrelay/relay-test:%d", os.Getpid())
	if out, err := exec.Command("make", "-C", "..", "--no-print-directory", "image", "IMAGE="+tag).CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(engine, "rmi", "-f", tag).Run() })

	out, err := exec.Command(engine, "image", "inspect", tag).Output()
	if err != nil {
		t.Fatalf("%s image inspect: %v", engine, err)
	}
	var inspect []struct {
		Config struct {
			User       string
			Entrypoint []string
			Volumes    map[string]any
		}
	}
	if err := json.Unmarshal(out, &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("image inspect: %v\n%s", err, out)
	}
	cfg := inspect[0].Config
	if cfg.User != "65532:65532" || !slices.Equal(cfg.Entrypoint, []string{"/relay"}) || cfg.Volumes["/state"] == nil {
		t.Errorf("image runs %q as %q with volumes %v; want /relay as 65532:65532 with /state", cfg.Entrypoint, cfg.User, cfg.Volumes)
	}

	archive := filepath.Join(t.TempDir(), "image.tar")
	if out, err := exec.Command(engine, "save", "--format", "docker-archive", "-o", archive, tag).CombinedOutput(); err != nil {
		t.Fatalf("%s save: %v\n%s", engine, err, out)
	}
	files := imageFiles(t, archive)
	for _, name := range []string{"relay", "device", "nats-server"} {
		f, ok := files[name]
		if !ok {
			t.Errorf("the image lacks /%s", name)
			continue
		}
		if want := digest(t, filepath.Join("..", "bin", "static", name)); f.sum != want {
			t.Errorf("/%s in the image is not bin/static/%s", name, name)
		}
		if f.hdr.Mode&0o111 == 0 {
			t.Errorf("/%s is not executable: %v", name, f.hdr.FileInfo().Mode())
		}
	}
	if st, ok := files["state"]; !ok || st.hdr.Typeflag != tar.TypeDir || st.hdr.Uid != 65532 || st.hdr.Gid != 65532 {
		t.Errorf("/state in the image: %+v; want a directory of 65532:65532", st.hdr)
	}
	for name := range files {
		switch strings.SplitN(name, "/", 2)[0] {
		case "relay", "device", "nats-server", "state":
		default:
			t.Errorf("the image holds %s; a FROM scratch image holds only the binaries and /state", name)
		}
	}
}

// imageFile is one entry of an image's layers.
type imageFile struct {
	hdr *tar.Header
	sum [sha256.Size]byte
}

// imageFiles reads every layer of a docker-archive tarball.
func imageFiles(t *testing.T, archive string) map[string]imageFile {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string]imageFile{}
	outer := tar.NewReader(f)
	for {
		h, err := outer.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("image archive: %v", err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".tar") {
			continue
		}
		layer := tar.NewReader(outer)
		for {
			lh, err := layer.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("image layer %s: %v", h.Name, err)
			}
			name := strings.TrimSuffix(strings.TrimPrefix(lh.Name, "./"), "/")
			if name == "" {
				continue
			}
			sum := sha256.New()
			io.Copy(sum, layer)
			files[name] = imageFile{hdr: lh, sum: [sha256.Size]byte(sum.Sum(nil))}
		}
	}
	return files
}

func digest(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// makeVar is a variable's default in the Makefile.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	for line := range strings.Lines(read(t, "../Makefile")) {
		if v, ok := strings.CutPrefix(line, name+" ?= "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("the Makefile sets no %s", name)
	return ""
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
