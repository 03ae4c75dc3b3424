package loadtest

// This file is the baseline: the same attack aimed at a bare fasthttp TLS
// handler instead of the relay, in the same run on the same machine. Its
// latency and throughput are the load generator's own ceiling (TLS, HTTP,
// loopback, the generator's CPU); relay minus baseline is the relay's cost.
//
// For a fair comparison the baseline runs as its own process, like the
// relay, so that its CPU is its own and can be sampled (StartSampler). The
// core wires it up as a hidden subcommand of the loadtest binary:
//
//	// cmd/loadtest main, before parsing anything else:
//	if len(os.Args) > 1 && os.Args[1] == loadtest.BaselineFlag {
//		os.Exit(loadtest.BaselineMain(os.Args[1:]))
//	}
//
// and starts it from the attack side with
//
//	exe, _ := os.Executable()
//	certFile, keyFile, caFile, err := loadtest.DevCertFiles(stateDir) // the relay's dev certificate
//	cmd := exec.Command(exe, loadtest.BaselineArgs("127.0.0.1:0", certFile, keyFile)...)
//	b, err := loadtest.StartBaseline(ctx, cmd)  // b.Addr to attack, b.PID to sample
//	defer b.Stop()
//
// Using the relay's development certificate (ECDSA P-256, signed by the
// development CA) makes both servers do the same TLS work, and the
// generator trusts both through the one caFile. WriteSelfSigned makes a
// throwaway pair when there is no relay state directory.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/valyala/fasthttp"
)

// BaselineFlag is the hidden subcommand's flag: `loadtest --serve-baseline
// ADDR --cert FILE --key FILE`.
const BaselineFlag = "--serve-baseline"

// baselineReady starts the one line the baseline process prints on stdout
// once it accepts connections: "baseline listening HOST:PORT".
const baselineReady = "baseline listening "

// baselineBody is the whole answer: what a device's acknowledgement looks
// like through the relay.
const baselineBody = `{"ok":true}`

// baselineDrain bounds the graceful shutdown when ctx ends.
const baselineDrain = 5 * time.Second

// ServeBaseline listens on addr (TCP, TLS 1.3 with cert) and answers every
// POST /cloud with 200 {"ok":true} and nothing else, until ctx ends. It
// returns the address it listens on (addr may have port 0).
func ServeBaseline(ctx context.Context, addr string, cert tls.Certificate) (net.Addr, error) {
	a, _, err := serveBaseline(ctx, addr, cert)
	return a, err
}

// serveBaseline is ServeBaseline; done closes when the server has shut
// down.
func serveBaseline(ctx context.Context, addr string, cert tls.Certificate) (net.Addr, <-chan struct{}, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("loadtest: baseline listen: %w", err)
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
	}
	// The settings that shape the work per request are the relay's
	// (server.New): header buffer, timeouts, no Server header, no
	// multipart parsing.
	srv := &fasthttp.Server{
		Handler:                      baselineHandler,
		ReadBufferSize:               8 << 10,
		ReadTimeout:                  10 * time.Second,
		WriteTimeout:                 10 * time.Second,
		IdleTimeout:                  60 * time.Second,
		NoDefaultServerHeader:        true,
		DisablePreParseMultipartForm: true,
		Logger:                       quietLogger{},
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(tls.NewListener(ln, conf)) // returns once Shutdown closes ln
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), baselineDrain)
		defer cancel()
		if srv.ShutdownWithContext(sctx) != nil {
			ln.Close() // Shutdown gave up on open connections
		}
		<-served
	}()
	return ln.Addr(), done, nil
}

func baselineHandler(ctx *fasthttp.RequestCtx) {
	switch {
	case string(ctx.Path()) != "/cloud":
		ctx.SetStatusCode(fasthttp.StatusNotFound)
	case !ctx.IsPost():
		ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
	default:
		ctx.SetContentType("application/json")
		ctx.SetBodyString(baselineBody)
	}
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// BaselineArgs are the arguments that make the loadtest binary serve the
// baseline: BaselineFlag addr --cert certFile --key keyFile.
func BaselineArgs(addr, certFile, keyFile string) []string {
	return []string{BaselineFlag, addr, "--cert", certFile, "--key", keyFile}
}

// BaselineMain runs the baseline as a process: args are BaselineArgs (the
// command line after the program name). It prints "baseline listening
// HOST:PORT" on stdout once it accepts connections and serves until
// SIGTERM, SIGINT or end of stdin (so it dies with a parent that held its
// stdin), then returns the exit code: 0, 1 on failure, 2 on bad usage.
func BaselineMain(args []string) int {
	return baselineMain(args, os.Stdin, os.Stdout, os.Stderr)
}

func baselineMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest "+BaselineFlag, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String(strings.TrimPrefix(BaselineFlag, "--"), "", "listen on `HOST:PORT`")
	certFile := fs.String("cert", "", "TLS certificate `FILE` (PEM)")
	keyFile := fs.String("key", "", "TLS private key `FILE` (PEM)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" || *certFile == "" || *keyFile == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: loadtest %s HOST:PORT --cert FILE --key FILE\n", BaselineFlag)
		return 2
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: baseline: %v\n", err)
		return 1
	}
	return runServer(stdin, stdout, stderr, baselineReady, func(ctx context.Context) (fmt.Stringer, <-chan struct{}, error) {
		return serveBaseline(ctx, *addr, cert)
	})
}

// runServer is the rest of a server subcommand (baseline, NATS, floor)
// once its flags are read: serve until SIGTERM, SIGINT or the end of stdin
// (the parent closing it or exiting), print ready and the address on
// stdout once it serves, and return the exit code.
func runServer(stdin io.Reader, stdout, stderr io.Writer, ready string, serve func(context.Context) (fmt.Stringer, <-chan struct{}, error)) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, stdin) // until the parent closes it or exits
		cancel()
	}()
	a, done, err := serve(ctx)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s%s\n", ready, a)
	<-done
	return 0
}

// BaselineProcess is a baseline server running as a child process.
type BaselineProcess = ServerProcess

// ServerProcess is a server this binary runs in a child process of its
// own, so that its CPU and memory can be sampled apart from the
// generator's: the baseline (BaselineArgs) or a cluster's NATS server
// (NATSArgs).
type ServerProcess struct {
	Addr string // HOST:PORT or URL it listens on, from its ready line
	PID  int    // for StartSampler

	cmd     *exec.Cmd
	stdin   io.Closer
	drained chan struct{} // closed when its stdout reaches EOF
}

// StartBaseline starts cmd, a command built with BaselineArgs (normally
// the loadtest binary itself, os.Executable()), and waits until it prints
// its address or ctx ends. cmd's Stdin and Stdout must be unset (they are
// the control pipes); Stderr defaults to this process's.
func StartBaseline(ctx context.Context, cmd *exec.Cmd) (*BaselineProcess, error) {
	return startServer(ctx, cmd, "baseline", baselineReady, nil)
}

// startServer starts cmd and waits until its first line on stdout is
// ready followed by its address. started, if set, gets the PID as soon as
// the process runs (to pin it to a CPU before it does any work worth
// measuring); its error stops the process.
func startServer(ctx context.Context, cmd *exec.Cmd, what, ready string, started func(pid int) error) (*ServerProcess, error) {
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("loadtest: %s: %w", what, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("loadtest: %s: %w", what, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: %s: %w", what, err)
	}
	b := &ServerProcess{PID: cmd.Process.Pid, cmd: cmd, stdin: stdin, drained: make(chan struct{})}

	line := make(chan string, 1)
	go func() {
		defer close(b.drained)
		r := bufio.NewReader(stdout)
		l, _ := r.ReadString('\n')
		line <- l
		io.Copy(io.Discard, r) // until the process exits
	}()
	if started != nil {
		if err := started(b.PID); err != nil {
			b.Stop()
			return nil, fmt.Errorf("loadtest: %s: %w", what, err)
		}
	}
	select {
	case l := <-line:
		a, ok := strings.CutPrefix(strings.TrimSpace(l), ready)
		if ok {
			b.Addr = a
			return b, nil
		}
		err = fmt.Errorf("loadtest: %s did not start (said %q)", what, l)
	case <-ctx.Done():
		err = fmt.Errorf("loadtest: %s did not start: %w", what, ctx.Err())
	}
	b.Stop()
	return nil, err
}

// Stop ends the server process and waits for it: it closes its stdin
// (the server's cue to shut down), sends SIGTERM if it is still there
// after 5 s and SIGKILL a second later. It returns the exit error, nil
// when the server exited cleanly. Call it once.
func (b *ServerProcess) Stop() error {
	b.stdin.Close()
	waited := make(chan error, 1)
	go func() {
		<-b.drained // Wait must come after the last read from stdout
		waited <- b.cmd.Wait()
	}()
	t := time.NewTimer(baselineDrain)
	defer t.Stop()
	select {
	case err := <-waited:
		return err
	case <-t.C:
	}
	// Not on the first try: a SIGTERM that lands after the server's main
	// has returned (and let go of the signal) would kill a clean exit.
	b.cmd.Process.Signal(syscall.SIGTERM)
	t.Reset(time.Second)
	select {
	case err := <-waited:
		return err
	case <-t.C:
		b.cmd.Process.Kill()
		return <-waited
	}
}

// DevCertFiles makes sure the relay's development certificate exists in
// dir (certs.LoadOrCreateDev) and returns its server certificate and key
// files, for the baseline to present the relay's own certificate, and the
// CA file the generator trusts for both.
func DevCertFiles(dir string) (certFile, keyFile, caFile string, err error) {
	dev, err := certs.LoadOrCreateDev(dir)
	if err != nil {
		return "", "", "", err
	}
	// certs documents these names (LoadOrCreateDev).
	d := filepath.Dir(dev.CAFile)
	return filepath.Join(d, "server.pem"), filepath.Join(d, "server-key.pem"), dev.CAFile, nil
}

// WriteSelfSigned writes a throwaway self-signed ECDSA P-256 certificate
// for localhost, 127.0.0.1 and ::1, valid for a day, as baseline.pem and
// baseline-key.pem (0600) in dir. The certificate is its own CA: the
// generator can trust certFile.
func WriteSelfSigned(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("loadtest: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", "", fmt.Errorf("loadtest: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "loadtest baseline"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("loadtest: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("loadtest: %w", err)
	}
	certFile = filepath.Join(dir, "baseline.pem")
	keyFile = filepath.Join(dir, "baseline-key.pem")
	err = errors.Join(
		os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644),
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600),
	)
	if err != nil {
		return "", "", fmt.Errorf("loadtest: %w", err)
	}
	return certFile, keyFile, nil
}
