// Package mosquittotest runs a real Eclipse Mosquitto broker on loopback for
// a test, as net/http/httptest does for HTTP servers: the reference MQTT
// broker that the simulated clocks (internal/mqttclock) are checked against,
// and that the relay's MQTT transport is compared with.
//
//	b := mosquittotest.Start(t)
//	clock, err := mqttclock.Dial(ctx, mqttclock.Config{Broker: b.URL(), ...})
//
// The broker is the Debian package's /usr/sbin/mosquitto (or mosquitto on
// PATH). It is a test dependency like Chromium: make testdeps installs it
// and a missing binary fails the test, naming make testdeps; it never skips.
//
// Only tests import this package.
package mosquittotest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian's mosquitto package installs the broker; Start
// falls back to mosquitto on PATH.
const Binary = "/usr/sbin/mosquitto"

const (
	// readyTimeout bounds the wait for the broker to accept TCP: far above
	// the few milliseconds it takes, so it only ever ends a failing test.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds the wait for the broker to exit after SIGTERM
	// before it is killed and the test fails.
	stopTimeout = 5 * time.Second
	// pollEvery is the readiness polling step.
	pollEvery = 5 * time.Millisecond
	// bindAttempts: the free port is found by listening on :0 and closing,
	// so another process may take it before mosquitto binds; then Start
	// tries a fresh port.
	bindAttempts = 5
)

// Option shapes one broker.
type Option func(*options)

type options struct {
	users map[string]string
	tls   bool
	extra []string
}

// WithUser adds an account (repeatable) and turns anonymous access off: a
// client with no or wrong credentials is refused at CONNACK.
func WithUser(name, password string) Option {
	return func(o *options) {
		if o.users == nil {
			o.users = map[string]string{}
		}
		o.users[name] = password
	}
}

// WithTLS makes the listener TLS (URL is then tls://) with a fresh
// self-signed certificate for 127.0.0.1, which TLSConfig trusts.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithConfig appends lines to the generated mosquitto.conf, after the
// listener (so listener options such as max_connections apply to it).
func WithConfig(lines ...string) Option {
	return func(o *options) { o.extra = append(o.extra, lines...) }
}

// Broker is a running mosquitto. Addr, URL and TLSConfig are static after
// Start; Restart keeps the port.
type Broker struct {
	tb   testing.TB
	bin  string
	dir  string // config, password file, certificates
	conf string // path of mosquitto.conf
	port int
	tls  *tls.Config // client side: trusts the broker's certificate; nil without WithTLS
	opts options

	mu     sync.Mutex    // guards the fields below
	cmd    *exec.Cmd     // the running process; nil once stopped
	exited chan struct{} // closed when cmd has been waited for
	err    error         // cmd.Wait's result, valid once exited is closed
	log    syncBuffer    // stderr of every run, for Log and a failing test
}

// syncBuffer is the broker's stderr, written by os/exec's copying goroutine
// and read by tests.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start runs a mosquitto on 127.0.0.1 and a free port until the end of the
// test: the broker is stopped in tb.Cleanup, which fails the test if it
// does not exit cleanly. The broker's log reaches the test log only if the
// test failed.
func Start(tb testing.TB, opts ...Option) *Broker {
	tb.Helper()
	bin, err := findBinary()
	if err != nil {
		tb.Fatalf("mosquittotest: %v: the MQTT tests need the Debian package mosquitto; run 'make testdeps'", err)
	}
	b := &Broker{tb: tb, bin: bin, dir: tb.TempDir()}
	for _, o := range opts {
		o(&b.opts)
	}
	if b.opts.tls {
		b.tls = b.writeCertificate()
	}
	tb.Cleanup(func() {
		b.Stop()
		if tb.Failed() {
			tb.Logf("mosquittotest: broker log:\n%s", b.log.String())
		}
	})
	for attempt := 1; ; attempt++ {
		b.port = freePort(tb)
		err := b.start()
		if err == nil {
			return b
		}
		if !errors.Is(err, errAddrInUse) || attempt == bindAttempts {
			tb.Fatalf("mosquittotest: %v", err)
		}
	}
}

func findBinary() (string, error) {
	if _, err := os.Stat(Binary); err == nil {
		return Binary, nil
	}
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		return "", fmt.Errorf("no %s and no mosquitto on PATH", Binary)
	}
	return path, nil
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("mosquittotest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var errAddrInUse = errors.New("port taken")

// start writes the configuration for b.port, runs mosquitto and waits until
// it accepts TCP or exits.
func (b *Broker) start() error {
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(b.config()), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout = &b.log
	cmd.Stderr = &b.log
	logStart := len(b.log.String())
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", b.bin, err)
	}
	exited := make(chan struct{})
	b.mu.Lock()
	b.cmd, b.exited = cmd, exited
	b.mu.Unlock()
	go func() {
		err := cmd.Wait()
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
		close(exited)
	}()

	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			b.mu.Lock()
			b.cmd = nil
			werr := b.err
			b.mu.Unlock()
			out := b.log.String()[logStart:]
			if strings.Contains(out, "Address already in use") {
				return errAddrInUse
			}
			return fmt.Errorf("mosquitto exited before accepting connections (%v):\n%s", werr, out)
		case <-time.After(pollEvery):
		}
		if time.Now().After(deadline) {
			b.Stop()
			return fmt.Errorf("mosquitto did not accept connections on %s within %v", b.Addr(), readyTimeout)
		}
	}
}

// config is mosquitto.conf for b.port. Connection messages are off: they
// carry client addresses, which the house rules keep out of logs; the
// subscribe log type is on, so a failing test shows what each client
// subscribed (and Log lets a test check it).
func (b *Broker) config() string {
	var c strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&c, format+"\n", args...) }
	if os.Geteuid() == 0 {
		// As root mosquitto drops to the mosquitto user, which cannot read
		// the test's temporary directory.
		line("user root")
	}
	line("persistence false")
	line("log_dest stderr")
	for _, t := range []string{"error", "warning", "notice", "information", "subscribe", "unsubscribe"} {
		line("log_type %s", t)
	}
	line("connection_messages false")
	line("per_listener_settings false")
	if len(b.opts.users) == 0 {
		line("allow_anonymous true")
	} else {
		line("allow_anonymous false")
		line("password_file %s", b.writePasswords())
	}
	line("listener %d 127.0.0.1", b.port)
	if b.opts.tls {
		line("certfile %s", filepath.Join(b.dir, "cert.pem"))
		line("keyfile %s", filepath.Join(b.dir, "key.pem"))
	}
	for _, l := range b.opts.extra {
		line("%s", l)
	}
	return c.String()
}

// writePasswords writes mosquitto's password file: mosquitto_passwd's own
// format, "$7$" PBKDF2-SHA512 with 101 iterations and a 12-byte salt.
func (b *Broker) writePasswords() string {
	var f strings.Builder
	for name, pw := range b.opts.users {
		salt := make([]byte, 12)
		rand.Read(salt)
		key, err := pbkdf2.Key(sha512.New, pw, salt, 101, sha512.Size)
		if err != nil {
			b.tb.Fatalf("mosquittotest: password hash: %v", err)
		}
		fmt.Fprintf(&f, "%s:$7$101$%s$%s\n", name,
			base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key))
	}
	path := filepath.Join(b.dir, "passwords")
	if err := os.WriteFile(path, []byte(f.String()), 0o600); err != nil {
		b.tb.Fatalf("mosquittotest: %v", err)
	}
	return path
}

// writeCertificate writes a self-signed certificate for 127.0.0.1 and its
// key, and returns a client configuration trusting it.
func (b *Broker) writeCertificate() *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.tb.Fatalf("mosquittotest: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mosquittotest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.tb.Fatalf("mosquittotest: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		b.tb.Fatalf("mosquittotest: %v", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(b.dir, "cert.pem"), certPEM, 0o600); err != nil {
		b.tb.Fatalf("mosquittotest: %v", err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "key.pem"), keyPEM, 0o600); err != nil {
		b.tb.Fatalf("mosquittotest: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Addr is the broker's "127.0.0.1:PORT".
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// URL is Addr in paho's form: "tcp://127.0.0.1:PORT", or "tls://..." with
// WithTLS.
func (b *Broker) URL() string {
	if b.opts.tls {
		return "tls://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

// TLSConfig is a client configuration that trusts the broker's
// certificate (WithTLS); nil without it. Clone it before changing it.
func (b *Broker) TLSConfig() *tls.Config { return b.tls }

// PID is the broker process's id (0 once stopped), for tests that read its
// resource use.
func (b *Broker) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Log is everything the broker has logged so far (over all its runs): one
// line per subscription ("CLIENTID QOS FILTER"), warnings and errors, no
// client addresses and no message bodies. The broker writes it
// asynchronously: poll for what a test expects.
func (b *Broker) Log() string { return b.log.String() }

// Stop ends the broker with SIGTERM and waits for it, failing the test if
// it does not exit with status 0 in time. Clients see their connections
// closed. Stop is idempotent; Start's cleanup calls it.
func (b *Broker) Stop() {
	b.tb.Helper()
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		b.tb.Errorf("mosquittotest: SIGTERM: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		cmd.Process.Kill()
		<-exited
		b.tb.Errorf("mosquittotest: broker did not exit within %v of SIGTERM; killed", stopTimeout)
		return
	}
	b.mu.Lock()
	err := b.err
	b.mu.Unlock()
	if err != nil {
		b.tb.Errorf("mosquittotest: broker exited: %v", err)
	}
}

// Restart stops the broker and starts it again on the same port and
// configuration, with no sessions or retained messages (persistence is
// off): a broker that rebooted.
func (b *Broker) Restart() {
	b.tb.Helper()
	b.Stop()
	if err := b.start(); err != nil {
		b.tb.Fatalf("mosquittotest: restart: %v", err)
	}
}
