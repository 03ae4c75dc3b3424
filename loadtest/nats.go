package loadtest

// This file is the cluster scenarios' NATS server. Like the baseline it runs
// as a hidden subcommand of the loadtest binary, in a process of its own, so
// that its CPU and memory are sampled apart from the generator's:
//
//	// cmd/loadtest main, before parsing anything else:
//	if len(os.Args) > 1 && os.Args[1] == loadtest.NATSFlag {
//		os.Exit(loadtest.NATSMain(os.Args[1:]))
//	}
//
// started with StartNATS(ctx, exec.Command(exe, loadtest.NATSArgs("127.0.0.1:0")...)).

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATSFlag is the hidden subcommand's flag: `loadtest --serve-nats ADDR`.
const NATSFlag = "--serve-nats"

// natsReady starts the one line the NATS process prints on stdout once it
// accepts clients: "nats listening nats://HOST:PORT".
const natsReady = "nats listening "

// natsStartTimeout bounds the NATS server's start.
const natsStartTimeout = 10 * time.Second

// NATSArgs are the arguments that make the loadtest binary serve NATS on
// addr (HOST:PORT, port 0 for any).
func NATSArgs(addr string) []string { return []string{NATSFlag, addr} }

// ServeNATS runs a NATS server on addr (loopback, no auth, no JetStream)
// until ctx ends; it returns the server's client URL. done closes when it
// has shut down.
func ServeNATS(ctx context.Context, addr string) (url string, done <-chan struct{}, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, fmt.Errorf("loadtest: nats address: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", nil, fmt.Errorf("loadtest: nats port: %w", err)
	}
	if port == 0 {
		port = -1 // nats-server's "any free port"
	}
	srv, err := natsserver.NewServer(&natsserver.Options{Host: host, Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		return "", nil, fmt.Errorf("loadtest: nats: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(natsStartTimeout) {
		srv.Shutdown()
		return "", nil, fmt.Errorf("loadtest: nats not ready within %v", natsStartTimeout)
	}
	d := make(chan struct{})
	go func() {
		defer close(d)
		<-ctx.Done()
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	return srv.ClientURL(), d, nil
}

// NATSMain runs the NATS server as a process: args are NATSArgs. It prints
// "nats listening nats://HOST:PORT" on stdout once it accepts clients and
// serves until SIGTERM, SIGINT or end of stdin, then returns the exit code:
// 0, 1 on failure, 2 on bad usage.
func NATSMain(args []string) int {
	return natsMain(args, os.Stdin, os.Stdout, os.Stderr)
}

func natsMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest "+NATSFlag, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String(strings.TrimPrefix(NATSFlag, "--"), "", "listen on `HOST:PORT`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: loadtest %s HOST:PORT\n", NATSFlag)
		return 2
	}
	return runServer(stdin, stdout, stderr, natsReady, func(ctx context.Context) (fmt.Stringer, <-chan struct{}, error) {
		url, done, err := ServeNATS(ctx, *addr)
		return stringer(url), done, err
	})
}

// stringer is a string as a fmt.Stringer.
type stringer string

func (s stringer) String() string { return string(s) }

// StartNATS starts cmd, a command built with NATSArgs (normally the
// loadtest binary itself), and waits until it prints its URL (the
// process's Addr) or ctx ends. Stop it with Stop.
func StartNATS(ctx context.Context, cmd *exec.Cmd) (*ServerProcess, error) {
	return startServer(ctx, cmd, "nats", natsReady, nil)
}
