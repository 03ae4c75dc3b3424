package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/cluster"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/pebbletest"
	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/internal/setting"
	"github.com/pixelrelay/relay/limit"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/session"
	"github.com/pixelrelay/relay/webhook"
	"github.com/pixelrelay/relay/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, relaytest.LeakOptions...)
}

func TestHelpNamesEveryEnvVar(t *testing.T) {
	var out bytes.Buffer
	if _, err := parse([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, env := range []string{"RELAY_LISTEN", "RELAY_ADMIN", "RELAY_CERT", "RELAY_KEY", "RELAY_STATE_DIR",
		"RELAY_MAX_BODY", "RELAY_MAX_INFLIGHT", "RELAY_ACK_TIMEOUT", "RELAY_LOG_LEVEL",
		"RELAY_TOKEN_RATE", "RELAY_TOKEN_BURST", "RELAY_IP_RATE", "RELAY_IP_BURST", "RELAY_MISS_RATE", "RELAY_MISS_BURST"} {
		if !strings.Contains(out.String(), env) {
			t.Errorf("--help does not mention %s", env)
		}
	}
}

func TestEnvironmentAndFlags(t *testing.T) {
	t.Setenv("RELAY_MAX_BODY", "1024")
	t.Setenv("RELAY_ACK_TIMEOUT", "2s")
	o, err := parse([]string{"--ack-timeout", "3s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Webhook.MaxBody != 1024 || o.cfg.Webhook.AckTimeout != 3*time.Second {
		t.Fatalf("max body %d, ack timeout %v; want 1024 from env, 3s from the flag", o.cfg.Webhook.MaxBody, o.cfg.Webhook.AckTimeout)
	}
}

func TestRateLimitFlags(t *testing.T) {
	o, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Webhook != webhook.DefaultConfig() || c.HandshakesPerSource != server.DefaultConfig().HandshakesPerSource {
		t.Fatalf("defaults: %+v, handshakes %+v; want the packages' defaults", c.Webhook, c.HandshakesPerSource)
	}
	if got, want := c.Session.Takeovers, session.DefaultConfig().Takeovers; math.Abs(got.PerSecond-want.PerSecond) > 1e-9 || got.Burst != want.Burst {
		t.Fatalf("takeovers %+v, want %+v", got, want)
	}
	t.Setenv("RELAY_IP_RATE", "1000")
	t.Setenv("RELAY_ROTATIONS_PER_MINUTE", "30")
	if o, err = parse([]string{"--token-rate", "0", "--miss-burst", "0", "--token-burst", "5", "--takeover-burst", "0"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	c = o.cfg
	// 0 disables, in the flags as in the configuration: one rule.
	if !c.Webhook.PerToken.Off() || !c.Webhook.Misses.Off() || !c.Session.Takeovers.Off() {
		t.Fatalf("token %+v, miss %+v, takeovers %+v; want all off", c.Webhook.PerToken, c.Webhook.Misses, c.Session.Takeovers)
	}
	if c.Webhook.PerSource != (limit.Rate{PerSecond: 1000, Burst: 400}) {
		t.Fatalf("ip %+v; want 1000 from the environment, 400", c.Webhook.PerSource)
	}
	if r := c.Session.Rotations; r.PerSecond != 0.5 || r.Burst != session.DefaultConfig().Rotations.Burst {
		t.Fatalf("rotations %+v; want 30 a minute from the environment", r)
	}
}

func TestGoAwayRedirect(t *testing.T) {
	for _, ok := range []string{"relay2.example:8443", "[2001:db8::1]:443", "192.0.2.7:1"} {
		o, err := parse([]string{"--goaway-redirect", ok}, io.Discard)
		if err != nil || o.cfg.Session.Redirect != ok {
			t.Errorf("--goaway-redirect %s: %v", ok, err)
		}
	}
	for _, bad := range []string{"relay2.example", "2001:db8::1:443", "relay2.example:0", "relay2.example:http", "a b:1", ":443"} {
		if _, err := parse([]string{"--goaway-redirect", bad}, io.Discard); err == nil {
			t.Errorf("--goaway-redirect %q: no error", bad)
		}
	}
}

func TestAllowOrigins(t *testing.T) {
	t.Setenv("RELAY_ALLOW_ORIGIN", "https://a.example, https://b.example/")
	o, err := parse([]string{"--allow-origin", "https://c.example"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// ff applies the environment to flags not given on the command line.
	want := "https://c.example"
	if len(o.cfg.AllowOrigins) != 1 || o.cfg.AllowOrigins[0] != want {
		t.Fatalf("origins %q, want [%s] (the flag wins over the environment)", o.cfg.AllowOrigins, want)
	}
	t.Setenv("RELAY_ALLOW_ORIGIN", "https://a.example, https://b.example/")
	if o, err = parse(nil, io.Discard); err != nil || len(o.cfg.AllowOrigins) != 2 || o.cfg.AllowOrigins[1] != "https://b.example" {
		t.Fatalf("from the environment: %q %v", o.cfg.AllowOrigins, err)
	}
}

func TestBadFlags(t *testing.T) {
	// What does not parse: parse refuses it.
	for _, args := range [][]string{
		{"--token-rate", "-1"}, {"--ip-burst", "-5"}, {"--miss-rate", "NaN"}, {"--ip-rate", "lots"}, {"--ip-rate", "+Inf"},
		{"--takeovers-per-minute", "-1"}, {"--rotation-burst", "1.5"}, {"--max-devices", "-1"}, {"--retry-above", "-3"}, {"--known-sources", "-1"},
		{"--proxy-from", "10.0.0.0/33"}, {"--proxy-from", "balancer"}, {"--max-body", "lots"}, {"--ack-timeout", "soon"},
		{"--log-format", "xml"}, {"--allow-origin", "clock.example"}, {"--log-level", "loud"}, {"stray"},
	} {
		if _, err := parse(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	// What parses but cannot work: the configurations' Check refuses it,
	// once, for --check-config and a start alike, naming the flag to fix.
	nats := []string{"--nats", "nats://127.0.0.1:4222"}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--max-body", "0"}, "--max-body"}, {[]string{"--max-body", "2000000"}, "--max-body"},
		{[]string{"--max-inflight", "-1"}, "--max-inflight"}, {[]string{"--max-inflight", "70000"}, "--max-inflight"},
		{[]string{"--ack-timeout", "0s"}, "--ack-timeout"}, {[]string{"--login-timeout", "0s"}, "--login-timeout"},
		{[]string{"--idle-timeout", "-1s"}, "--idle-timeout"}, {[]string{"--drain-timeout", "-1s"}, "--drain-timeout"},
		{[]string{"--reconnect-spread", "-1s"}, "--reconnect-spread"}, {[]string{"--known-source-ttl", "0s"}, "--known-source-ttl"},
		{[]string{"--http-read-timeout", "0s"}, "--http-read-timeout"}, {[]string{"--websocket-write-timeout", "0s"}, "--websocket-write-timeout"},
		{[]string{"--max-header-bytes", "0"}, "--max-header-bytes"}, {[]string{"--listen", "443"}, "--listen"},
		{append(nats, "--nats-key", "k.pem"), "--nats-cert"}, {append(nats, "--nats-pending", "0"), "--nats-pending"},
		{[]string{"--nats", "nats://127.0.0.1:4222", "--nats-subject", "a b"}, "--nats-subject"},
	} {
		o, err := parse(append(c.args, "--state-dir", t.TempDir()), io.Discard)
		if err != nil {
			t.Errorf("%q: parse: %v; want it to parse and fail its check", c.args, err)
			continue
		}
		if err = check(o); err == nil || !strings.HasPrefix(err.Error(), c.flag+": ") {
			t.Errorf("%q: check: %v; want an error naming %s", c.args, err, c.flag)
		}
	}
}

func TestRunServesAndStops(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &relaytest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--state-dir", filepath.Join(dir, "st")}, io.Discard, logs, nil)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay log:\n%s", logs)
		}
	})
	admin := regexp.MustCompile(`admin=(127\.0\.0\.1:\d+)`)
	var m []string
	relaytest.WaitFor(t, func() bool {
		m = admin.FindStringSubmatch(logs.String())
		return m != nil
	})
	resp, err := http.Get("http://" + m[1] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	if !strings.Contains(logs.String(), "sha256=") || !strings.Contains(logs.String(), "ca.pem") {
		t.Fatalf("the dev CA's path and fingerprint are not printed:\n%s", logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The TLS ticket secret and the QUIC token key live in the state
	// directory, private.
	for _, name := range []string{quicTokenKeyFile, ticketKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, "st", name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v; want 0600", name, fi.Mode())
		}
	}
}

func TestNATSFlags(t *testing.T) {
	o, err := parse(nil, io.Discard)
	if err != nil || len(o.cfg.Cluster.URLs) != 0 {
		t.Fatalf("default: %v %v; want a node alone", o.cfg.Cluster.URLs, err)
	}
	t.Setenv("RELAY_NATS", "nats://n1.example:4222, tls://n2.example:4222")
	t.Setenv("RELAY_NATS_PENDING", "64")
	o, err = parse([]string{"--nats-ca", "ca.pem", "--nats-subject", "clocks", "--ready-needs-cluster", "--nats-max-serving", "9"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg.Cluster
	if len(c.URLs) != 2 || c.URLs[1] != "tls://n2.example:4222" || c.CA != "ca.pem" || c.Subject != "clocks" || !o.cfg.ReadyNeedsCluster || c.Name == "" || c.Pending != 64 || c.MaxServing != 9 {
		t.Fatalf("cluster config %+v, ready %v", c, o.cfg.ReadyNeedsCluster)
	}
	if o, _ = parse(nil, io.Discard); o.cfg.Cluster.Pending != 64 {
		t.Fatalf("RELAY_NATS_PENDING=64: pending %d", o.cfg.Cluster.Pending)
	}
	t.Setenv("RELAY_NATS_PENDING", "")
	if o, _ = parse(nil, io.Discard); o.cfg.Cluster.Pending != cluster.DefaultPending {
		t.Fatalf("pending %d by default, want %d", o.cfg.Cluster.Pending, cluster.DefaultPending)
	}
	t.Setenv("RELAY_NATS", "")
	for _, args := range [][]string{{"--nats-creds", "x.creds"}, {"--ready-needs-cluster"}} {
		if _, err := parse(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	// A certificate without its key parses; its check refuses it.
	if o, err := parse([]string{"--nats", "nats://a:4222", "--nats-cert", "c.pem"}, io.Discard); err != nil {
		t.Errorf("--nats-cert alone: parse: %v", err)
	} else if err := check(o); err == nil || !strings.HasPrefix(err.Error(), "--nats-key: ") {
		t.Errorf("--nats-cert alone: check: %v, want --nats-key named", err)
	}
}

// TestConfigFile: --config reads settings by flag name; the environment
// overrides the file, a flag the environment.
func TestConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "relay.conf")
	os.WriteFile(file, []byte("# relay settings\nmax-body 1024\nack-timeout 2s\nmax-inflight 7\nnats nats://n1:4222,nats://n2:4222\n"), 0o600)
	t.Setenv("RELAY_ACK_TIMEOUT", "3s")
	o, err := parse([]string{"--config", file, "--max-inflight", "9"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Webhook.MaxBody != 1024 || o.cfg.Webhook.AckTimeout != 3*time.Second || o.cfg.Session.MaxInflight != 9 || len(o.cfg.Cluster.URLs) != 2 {
		t.Fatalf("max body %d (file: 1024), ack %v (env: 3s), in-flight %d (flag: 9), nats %v (file)",
			o.cfg.Webhook.MaxBody, o.cfg.Webhook.AckTimeout, o.cfg.Session.MaxInflight, o.cfg.Cluster.URLs)
	}
	os.WriteFile(file, []byte("no-such-flag 1\n"), 0o600)
	if _, err := parse([]string{"--config", file}, io.Discard); err == nil {
		t.Fatal("a config file naming an unknown flag was accepted")
	}
	if _, err := parse([]string{"--config", filepath.Join(t.TempDir(), "missing")}, io.Discard); err == nil {
		t.Fatal("a missing config file was accepted")
	}
}

// TestVersion builds the relay and asks it for its version: the module
// version, the VCS revision of this checkout (when it is one) and Go's.
func TestVersion(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test builds the command with the go command, which is not on PATH: %v", err)
	}
	head, gitErr := exec.Command("git", "rev-parse", "HEAD").Output()
	vcs := "-buildvcs=false"
	if gitErr == nil {
		vcs = "-buildvcs=true" // this machine's GOFLAGS may say false
	}
	bin := filepath.Join(t.TempDir(), "relay")
	if out, err := exec.Command(gobin, "build", vcs, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("relay --version: %v", err)
	}
	line := string(out)
	if !strings.HasPrefix(line, "relay ") || !strings.Contains(line, runtime.Version()) {
		t.Fatalf("relay --version printed %q", line)
	}
	if gitErr == nil {
		if rev := strings.TrimSpace(string(head)); !strings.Contains(line, "rev "+rev) {
			t.Fatalf("relay --version printed %q, want revision %s", line, rev)
		}
	} else {
		t.Logf("not a git checkout (%v): the revision is not checked", gitErr)
	}
}

func TestProxyFromFlag(t *testing.T) {
	t.Setenv("RELAY_PROXY_FROM", "10.0.0.0/8, 192.0.2.10")
	o, err := parse(nil, io.Discard)
	if err != nil || len(o.cfg.ProxyFrom) != 2 || o.cfg.ProxyFrom[1] != "192.0.2.10" {
		t.Fatalf("--proxy-from from the environment: %v %v", o.cfg.ProxyFrom, err)
	}
}

// startRun runs the relay command in process until the end of the test and
// returns its public address and log.
func startRun(t *testing.T, hup chan os.Signal, args ...string) (string, *relaytest.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &relaytest.Buffer{}
	done := make(chan error, 1)
	args = append([]string{"--listen", "127.0.0.1:0", "--admin", "", "--drain-timeout", "1s"}, args...)
	go func() { done <- run(ctx, args, io.Discard, logs, hup) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay run: %v", err)
		}
		if t.Failed() {
			t.Logf("relay log:\n%s", logs)
		}
	})
	listen := regexp.MustCompile(`listen=(127\.0\.0\.1:\d+)`)
	var m []string
	relaytest.WaitFor(t, func() bool {
		m = listen.FindStringSubmatch(logs.String())
		return m != nil
	})
	return m[1], logs
}

// servedSerial is the serial of the certificate a new handshake gets.
func servedSerial(t *testing.T, addr string, conf *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestCertificateReload: SIGHUP, or a change of the files, makes new
// handshakes get the new --cert/--key while a device stays on its first
// session; a broken pair is refused with a log line and the old one stays.
func TestCertificateReload(t *testing.T) {
	a, err := certs.LoadOrCreateDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := certs.LoadOrCreateDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, d := range []*certs.Dev{a, b} {
		p, _ := os.ReadFile(d.CAFile)
		pool.AppendCertsFromPEM(p)
	}
	trust := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	pair := func(d *certs.Dev) (cert, key []byte) {
		dir := filepath.Dir(d.CAFile)
		cert, _ = os.ReadFile(filepath.Join(dir, "server.pem"))
		key, _ = os.ReadFile(filepath.Join(dir, "server-key.pem"))
		return cert, key
	}
	install := func(certFile, keyFile string, cert, key []byte) {
		// As an ACME client does: write beside, rename over.
		for f, data := range map[string][]byte{keyFile: key, certFile: cert} {
			os.WriteFile(f+".new", data, 0o600)
			os.Rename(f+".new", f)
		}
	}

	for _, how := range []string{"SIGHUP", "file change"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			cert, key := pair(a)
			install(certFile, keyFile, cert, key)
			hup := make(chan os.Signal, 1)
			addr, logs := startRun(t, hup, "--cert", certFile, "--key", keyFile, "--cert-watch="+fmt.Sprint(how == "file change"))
			first := servedSerial(t, addr, trust)
			dev, err := device.Dial(context.Background(), addr, wire.NewToken(), device.Options{TLS: trust})
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Close()

			cert, key = pair(b)
			install(certFile, keyFile, cert, key)
			if how == "SIGHUP" {
				hup <- syscall.SIGHUP
			}
			relaytest.WaitFor(t, func() bool { return servedSerial(t, addr, trust) != first })
			if dev.Context().Err() != nil {
				t.Fatal("the device's session ended with the reload")
			}
			second := servedSerial(t, addr, trust)

			os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o600)
			if how == "SIGHUP" {
				hup <- syscall.SIGHUP
			}
			relaytest.WaitFor(t, func() bool { return strings.Contains(logs.String(), "certificate reload refused") })
			if got := servedSerial(t, addr, trust); got != second {
				t.Fatal("a broken pair replaced the working one")
			}
			if dev.Context().Err() != nil {
				t.Fatal("the device's session ended")
			}
		})
	}
}

// TestCheckConfig: --check-config checks flags, file and certificates,
// says so, and starts nothing.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--check-config", "--state-dir", dir, "--listen", "127.0.0.1:1"}, &out, io.Discard, nil); err != nil || !strings.Contains(out.String(), "configuration OK") {
		t.Fatalf("a good configuration: %v %q", err, out.String())
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("nonsense"), 0o600)
	if err := run(context.Background(), []string{"--check-config", "--cert", bad, "--key", bad}, io.Discard, io.Discard, nil); !errors.Is(err, certs.ErrBadPair) {
		t.Fatalf("a broken certificate: %v, want certs.ErrBadPair", err)
	}
	if err := run(context.Background(), []string{"--check-config", "--state-dir", dir, "--max-inflight", "0"}, io.Discard, io.Discard, nil); err == nil {
		t.Fatal("a bad limit passed --check-config")
	}
	// The cluster's settings are checked too, without connecting.
	nats := []string{"--check-config", "--state-dir", dir, "--nats", "nats://127.0.0.1:1"}
	if err := run(context.Background(), nats, &out, io.Discard, nil); err != nil {
		t.Fatalf("a clustered configuration: %v", err)
	}
	for _, p := range []string{"0", strconv.Itoa(cluster.MaxPending + 1)} {
		if err := run(context.Background(), append(nats, "--nats-pending", p), io.Discard, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "pending") {
			t.Errorf("--nats-pending %s: %v, want an error about it", p, err)
		}
	}
	if err := run(context.Background(), append(nats, "--nats-max-serving", "0"), io.Discard, io.Discard, nil); err == nil || !strings.HasPrefix(err.Error(), "--nats-max-serving: ") {
		t.Errorf("--nats-max-serving 0: %v, want an error about it", err)
	}
	if err := run(context.Background(), []string{"--check-config", "--state-dir", dir, "--acme-domain", "relay.example", "--acme-email", "ops@relay.example"}, &out, io.Discard, nil); err != nil {
		t.Fatalf("an ACME configuration: %v", err)
	}
}

// TestCheckConfigRefusesWhatStartRefuses: an address the relay cannot
// listen on fails --check-config with the message a start gives, which
// names the flag, and server.New gives the same one: the addresses are
// checked once, by server.Config.Check.
func TestCheckConfigRefusesWhatStartRefuses(t *testing.T) {
	t.Chdir(t.TempDir())
	// A credentials file whose JWT reads but whose seed does not: NATS
	// would refuse every connection, so the node would never join.
	creds := filepath.Join(t.TempDir(), "relay.creds")
	os.WriteFile(creds, []byte("-----BEGIN NATS USER JWT-----\neyJhbGciOiJlZDI1NTE5In0.e30.c2ln\n------END NATS USER JWT------\n\n"+
		"-----BEGIN USER NKEY SEED-----\nSUNOTASEED\n------END USER NKEY SEED------\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"--listen", "443"}, `--listen: server: listen address "443": want HOST:PORT, not a bare port (":443" for every interface)`},
		{[]string{"--admin", "9443x"}, `--admin: server: admin address "9443x": want HOST:PORT`},
		{[]string{"--admin", "127.0.0.1:9443x"}, `--admin: server: admin address "127.0.0.1:9443x": port "9443x": want a number from 0 to 65535`},
		{[]string{"--listen", ":https"}, `--listen: server: listen address ":https": port "https"`},
		{[]string{"--listen", ":65536"}, `port "65536"`},
		{[]string{"--acme-domain", "relay.example", "--acme-http", "80"}, `--acme-http "80": want HOST:PORT, not a bare port`},
		// The certificates' settings, checked by certs.Config.Check.
		{[]string{"--cert", "x.pem"}, "--key: certs: a certificate file needs its key file"},
		{[]string{"--key", "x.pem"}, "--cert: certs: a key file needs its certificate file"},
		{[]string{"--cert", "/nonexistent/x.pem", "--key", "/nonexistent/x.pem"}, "--cert: certs: certificate: open /nonexistent/x.pem"},
		{[]string{"--acme-domain", "relay.example", "--cert", "x.pem", "--key", "x.pem"}, "--acme-domain: certs: ACME and certificate files exclude each other"},
		{[]string{"--acme-domain", "relay example"}, `--acme-domain: certs: ACME domain "relay example": want a DNS name`},
		{[]string{"--acme-http", ":80"}, "--acme-http: certs: HTTP-01 challenges, but no ACME domain"},
		{[]string{"--acme-ca-roots", "roots.pem"}, "--acme-ca-roots: certs: roots of an ACME server, but no ACME domain"},
		{[]string{"--acme-domain", "relay.example", "--acme-ca-roots", "/nonexistent/roots.pem"}, "--acme-ca-roots: trust: CA file: open /nonexistent/roots.pem"},
		// The cluster's files are read as the NATS client reads them.
		{[]string{"--nats", "nats://127.0.0.1:1", "--nats-creds", "/nonexistent/relay.creds"}, "cluster: NATS: nats: open /nonexistent/relay.creds"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--nats-creds", creds}, "cluster: NATS credentials " + creds + ": "},
		{[]string{"--nats", "nats://127.0.0.1:1", "--nats-ca", "/nonexistent/ca.pem"}, "cluster: NATS: nats: error loading or parsing rootCA file"},
		// A URL is not quoted back: it may hold a password.
		{[]string{"--nats", "nats://ops:s3cret@a b:4222"}, `cluster: NATS URL 1 of 1: invalid character " " in host name`},
	} {
		checked := run(context.Background(), append(c.args, "--check-config"), io.Discard, io.Discard, nil)
		if checked == nil || !strings.Contains(checked.Error(), c.want) {
			t.Errorf("%q --check-config: %v; want an error with %s", c.args, checked, c.want)
			continue
		}
		if strings.Contains(checked.Error(), "s3cret") {
			t.Errorf("%q: the error names the password: %v", c.args, checked)
		}
		// A start refuses the same, with the same words, before it makes
		// a file or binds a port.
		if started := run(canceled(), c.args, io.Discard, io.Discard, nil); started == nil || started.Error() != checked.Error() {
			t.Errorf("%q started: %v; --check-config said %v", c.args, started, checked)
		}
	}
	cfg := server.DefaultConfig()
	cfg.TLS = &tls.Config{}
	for _, c := range []struct{ listen, admin, want string }{
		{"443", "", `server: listen address "443": want HOST:PORT, not a bare port (":443" for every interface)`},
		{"127.0.0.1:0", "9443x", `server: admin address "9443x": want HOST:PORT`},
	} {
		cfg.Listen, cfg.Admin = c.listen, c.admin
		n, err := server.New(cfg)
		if err == nil {
			n.Run(canceled())
			t.Fatalf("server.New took listen %q, admin %q", c.listen, c.admin)
		}
		se, ok := errors.AsType[*setting.Error](err)
		if !ok || !strings.HasPrefix(se.Err.Error(), c.want) {
			t.Errorf("server.New with listen %q, admin %q: %v; want %s", c.listen, c.admin, err, c.want)
		}
	}
	if entries, _ := os.ReadDir("."); len(entries) > 0 {
		t.Errorf("refused configurations left %d files behind: %v", len(entries), entries)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestCheckConfigCreatesNothing: --check-config reads the state directory
// and the certificates but creates nothing, not even the default
// ./relay-state, and refuses what would stop a start there: a broken key
// file, a broken development CA, a state directory that is a file.
func TestCheckConfigCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{
		nil, // the development CA in ./relay-state
		{"--state-dir", filepath.Join(dir, "a", "b", "c")},
		{"--acme-domain", "relay.example", "--acme-http", ":80"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), append(args, "--check-config"), &out, io.Discard, nil); err != nil || !strings.Contains(out.String(), "configuration OK") {
			t.Fatalf("%q --check-config: %v\n%s", args, err, out.String())
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Fatalf("%q --check-config created %v", args, entries)
		}
	}

	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	os.WriteFile(filepath.Join(state, quicTokenKeyFile), []byte("short\n"), 0o600)
	if err := run(context.Background(), []string{"--check-config", "--state-dir", state}, io.Discard, io.Discard, nil); err == nil || !strings.Contains(err.Error(), quicTokenKeyFile) {
		t.Errorf("a broken %s: %v", quicTokenKeyFile, err)
	}
	os.Remove(filepath.Join(state, quicTokenKeyFile))
	os.WriteFile(filepath.Join(state, "ca.pem"), []byte("nonsense"), 0o600)
	if err := run(context.Background(), []string{"--check-config", "--state-dir", state}, io.Discard, io.Discard, nil); !errors.Is(err, certs.ErrBadCA) {
		t.Errorf("a broken development CA: %v, want certs.ErrBadCA", err)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if err := run(context.Background(), []string{"--check-config", "--state-dir", filepath.Join(file, "sub")}, io.Discard, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "--state-dir") {
		t.Errorf("a state directory under a file: %v", err)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 1 {
		t.Errorf("--check-config wrote into the state directory: %v", entries)
	}
}

// TestCheckConfigPrintsSettings: --check-config prints every flag's
// effective value, paths for files and never a secret (a NATS URL's
// password or token, a key's or certificate's content), then "configuration
// OK".
func TestCheckConfigPrintsSettings(t *testing.T) {
	dev, err := certs.LoadOrCreateDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	devDir := filepath.Dir(dev.CAFile)
	certFile, keyFile := filepath.Join(devDir, "server.pem"), filepath.Join(devDir, "server-key.pem")
	t.Setenv("RELAY_MAX_BODY", "2048")
	var out bytes.Buffer
	err = run(context.Background(), []string{"--check-config", "--state-dir", t.TempDir(), "--listen", "127.0.0.1:1",
		"--cert", certFile, "--key", keyFile, "--nats-ca", dev.CAFile, "--proxy-from", "10.0.0.0/8",
		"--nats", "nats://ops:s3cret@n1.example:4222, nats://t0ken@n2.example:4222,n3.example:4222"}, &out, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"--listen=127.0.0.1:1\n", "--admin=127.0.0.1:9443\n", "--max-body=2048\n", "--cert=" + certFile + "\n", "--key=" + keyFile + "\n",
		"--nats-ca=" + dev.CAFile + "\n", "--proxy-from=10.0.0.0/8\n", "--ack-timeout=5s\n", "--token-rate=20\n",
		"--nats=nats://REDACTED@n1.example:4222,nats://REDACTED@n2.example:4222,n3.example:4222\n", "--goaway-redirect=''\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("--check-config does not print %q", want)
		}
	}
	for _, secret := range []string{"s3cret", "t0ken", "PRIVATE KEY", "CERTIFICATE"} {
		if strings.Contains(text, secret) {
			t.Errorf("--check-config printed %q", secret)
		}
	}
	o, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.flags.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(text, "\n--"+f.Name+"=") && !strings.HasPrefix(text, "--"+f.Name+"=") {
			t.Errorf("--check-config does not print --%s", f.Name)
		}
	})
	if !strings.HasSuffix(text, "\nrelay: configuration OK\n") {
		t.Errorf("--check-config does not end with configuration OK:\n%s", text)
	}
	if t.Failed() {
		t.Logf("printed:\n%s", text)
	}
}

// TestQuickStartLeavesTheTreeClean: what README's quick start writes into
// the checkout (the relay's state, the agent's token file) is ignored by
// git, so that a build after it is not stamped +dirty; step 2 reads the
// token from the file step 1 names.
func TestQuickStartLeavesTheTreeClean(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	quick, _, _ := strings.Cut(string(readme), "No device at hand?")
	m := regexp.MustCompile(`--token-file (\S+)`).FindStringSubmatch(quick)
	if m == nil {
		t.Fatal("the quick start names no --token-file")
	}
	token := m[1]
	if !strings.Contains(quick, "$(cat "+token+")") {
		t.Errorf("step 2 does not read the token from %s, the file step 1 names", token)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skipf("SKIPPED LOUDLY: git is not on PATH, so whether %s is ignored is not checked", token)
	}
	if err := exec.Command("git", "-C", "../..", "rev-parse", "--git-dir").Run(); err != nil {
		t.Skipf("SKIPPED LOUDLY: not a git checkout (%v), so whether %s is ignored is not checked", err, token)
	}
	for _, p := range []string{"relay-state/ca.pem", token} {
		err := exec.Command("git", "-C", "../..", "check-ignore", "--quiet", "--no-index", p).Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit) && exit.ExitCode() == 1:
			t.Errorf("the quick start writes %s, which git does not ignore: builds after it are +dirty", p)
		case err != nil:
			t.Errorf("git check-ignore %s: %v", p, err)
		}
	}
}

// TestACMEHTTP01: with --acme-http the relay also answers HTTP-01
// challenges there, so it gets a certificate when the CA cannot reach its
// TLS port (Pebble validates TLS-ALPN-01 on a port where nothing
// listens); it trusts a private ACME directory with --acme-ca-roots; the
// certificate serves TLS 1.3 and 1.2 callers; the HTTP port sends
// everything else to HTTPS.
func TestACMEHTTP01(t *testing.T) {
	httpPort := pebbletest.FreePort(t)
	ca := pebbletest.Start(t, pebbletest.Options{ChallengePort: pebbletest.FreePort(t), HTTPPort: httpPort})
	roots := filepath.Join(t.TempDir(), "directory.pem")
	if err := os.WriteFile(roots, ca.DirectoryPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, logs := startRun(t, nil, "--acme-domain", pebbletest.Domain, "--acme-ca", ca.Directory, "--acme-ca-roots", roots,
		"--acme-http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--state-dir", t.TempDir())
	relaytest.WaitFor(t, func() bool { return strings.Contains(logs.String(), "ACME certificate ready") })
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Roots, ServerName: pebbletest.Domain, MaxVersion: v})
		if err != nil {
			t.Fatalf("%s handshake with the ACME certificate: %v", tls.VersionName(v), err)
		}
		c.Close()
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/cloud", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "https://") {
		t.Fatalf("plain HTTP on --acme-http: %d %q, want a redirect to HTTPS", resp.StatusCode, loc)
	}

	// A directory whose certificate the roots do not sign: a clear error.
	if err := run(context.Background(), []string{"--acme-domain", "x.test", "--acme-ca-roots", filepath.Join(t.TempDir(), "none.pem")}, io.Discard, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "--acme-ca-roots") {
		t.Fatalf("--acme-ca-roots of a missing file: %v", err)
	}
}
