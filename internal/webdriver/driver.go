package webdriver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// Bounds of Start and Close.
const (
	// startAttempts retries a chromedriver that exits at once: the free
	// port it was given may have been taken in between.
	startAttempts = 3
	pollInterval  = 20 * time.Millisecond
	// deleteTimeout bounds the DELETE of each session left at Close.
	deleteTimeout = 5 * time.Second
	// exitTimeout is how long Close waits for the process group to end
	// after SIGTERM before SIGKILL.
	exitTimeout = 2 * time.Second
)

// Driver is a running chromedriver, in its own process group with the
// browsers it starts.
type Driver struct {
	URL string // http://127.0.0.1:PORT; static after Start

	c      *client
	cmd    *exec.Cmd
	out    *tailBuffer   // chromedriver's stdout and stderr, for error messages
	exited chan struct{} // closed when cmd.Wait has returned

	mu       sync.Mutex // guards the fields below
	sessions map[*Session]struct{}
	closed   bool
}

// Start runs chromedriver at path on a free 127.0.0.1 port and waits, as
// long as ctx allows, until its /status says it is ready. args are extra
// chromedriver flags.
func Start(ctx context.Context, path string, args ...string) (*Driver, error) {
	var err error
	for range startAttempts {
		var d *Driver
		if d, err = start(ctx, path, args); err == nil {
			return d, nil
		}
		if !errors.Is(err, errExited) || ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

var errExited = errors.New("webdriver: chromedriver exited")

func start(ctx context.Context, path string, args []string) (*Driver, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d := &Driver{
		URL:      "http://127.0.0.1:" + strconv.Itoa(port),
		out:      &tailBuffer{max: 16 << 10},
		exited:   make(chan struct{}),
		sessions: make(map[*Session]struct{}),
	}
	d.c = &client{base: d.URL, http: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	d.cmd = exec.Command(path, append([]string{"--port=" + strconv.Itoa(port)}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	// Browsers left running would outlive the test: a process group lets
	// Close end chromedriver and everything it started.
	setProcessGroup(d.cmd)
	// Children that keep the output pipe open must not hold Wait forever.
	d.cmd.WaitDelay = exitTimeout
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("webdriver: start %s: %w", path, err)
	}
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	if err := d.waitReady(ctx); err != nil {
		d.kill()
		return nil, err
	}
	return d, nil
}

// waitReady polls GET /status until it says ready.
func (d *Driver) waitReady(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last error
	for {
		var st struct {
			Ready   bool   `json:"ready"`
			Message string `json:"message"`
		}
		last = d.c.do(ctx, http.MethodGet, "/status", nil, &st)
		if last == nil && st.Ready {
			return nil
		}
		if last == nil {
			last = fmt.Errorf("not ready: %s", st.Message)
		}
		select {
		case <-d.exited:
			return fmt.Errorf("%w before it was ready (%v); output:\n%s", errExited, d.cmd.ProcessState, d.out)
		case <-ctx.Done():
			return fmt.Errorf("webdriver: chromedriver not ready: %w (last: %v); output:\n%s", ctx.Err(), last, d.out)
		case <-t.C:
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("webdriver: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// NewSession starts a browser.
func (d *Driver) NewSession(ctx context.Context, opts Options) (*Session, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	s, err := newSession(ctx, d.c, opts)
	if err != nil {
		return nil, err
	}
	s.d = d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed { // Close ran meanwhile and will kill the browser
		return nil, ErrClosed
	}
	d.sessions[s] = struct{}{}
	return s, nil
}

func (d *Driver) forget(s *Session) {
	d.mu.Lock()
	delete(d.sessions, s)
	d.mu.Unlock()
}

// Output is the tail of chromedriver's output so far.
func (d *Driver) Output() string { return d.out.String() }

// Close deletes the sessions still open, so that their browsers exit
// cleanly, then ends chromedriver and every process it started. It waits
// for them, boundedly, and is idempotent.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	open := make([]*Session, 0, len(d.sessions))
	for s := range d.sessions {
		open = append(open, s)
	}
	d.mu.Unlock()

	var errs []error
	for _, s := range open {
		ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		errs = append(errs, s.Delete(ctx))
		cancel()
	}
	d.kill()
	d.c.http.CloseIdleConnections()
	return errors.Join(errs...)
}

// kill ends the process group: SIGTERM, then SIGKILL if chromedriver has
// not exited within exitTimeout. Then it waits for Wait to return.
func (d *Driver) kill() {
	signalGroup(d.cmd, false)
	select {
	case <-d.exited:
		// chromedriver is gone; its browsers may still be exiting.
		signalGroup(d.cmd, true)
	case <-time.After(exitTimeout):
		signalGroup(d.cmd, true)
		<-d.exited
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // guards b
	b   []byte
	max int // static
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
