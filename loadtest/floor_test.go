package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/wire"
)

// post sends body to the floor's webhook endpoint and returns the status
// and body.
func post(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// replying is a device that answers every message 200 with body.
func replying(body string) device.Handler {
	return device.HandlerFunc(func(context.Context, wire.Message) (int, []byte) { return 200, []byte(body) })
}

// Each floor serves its devices end to end over loopback: a swarm logs in,
// every webhook reaches its device exactly once and comes back with the
// device's reply, an unknown token is 404, and a second login with a
// token closes the first as replaced.
func TestFloorServe(t *testing.T) {
	dev, err := certs.LoadOrCreateDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clientTLS, err := tlsTrusting(dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range FloorKinds {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			fctx, stop := context.WithCancel(ctx)
			defer stop()
			addr, done, err := serveFloor(fctx, kind, "127.0.0.1:0", dev.TLS.Certificates[0])
			if err != nil {
				t.Fatal(err)
			}
			devices := pure(kind)
			sw, err := NewSwarm(SwarmConfig{Addr: addr.String(), TLS: clientTLS, Devices: 20, WebTransportShare: devices.wt, WebSocketShare: devices.ws})
			if err != nil {
				t.Fatal(err)
			}
			defer sw.Close()
			if cs := sw.Connect(ctx, 10*time.Second); cs.Failed != 0 {
				n, errs := sw.DialErrors()
				t.Fatalf("%d of 20 devices did not log in (%d dial errors: %q)", cs.Failed, n, errs)
			}

			c := tlsClient(t, dev.CAFile)
			base := "https://" + addr.String() + "/cloud?mode=notify&token="
			for i := range sw.Len() {
				id := sw.NextID()
				code, body := post(t, c, base+sw.Token(i), fmt.Sprintf(`{"text":"hi","lt":[%d,%d]}`, id, i))
				if code != 200 || body != `{"ok":true}` {
					t.Fatalf("webhook to device %d = %d %q, want the device's 200 {\"ok\":true}", i, code, body)
				}
				if n, misrouted := sw.Seen(id); n != 1 || misrouted {
					t.Fatalf("message %d reached its device %d times (misrouted %v), want once", id, n, misrouted)
				}
			}
			if cnt := sw.Counts(); cnt.Handled != uint64(sw.Len()) || cnt.Misrouted+cnt.Unparsed+cnt.Stray != 0 {
				t.Errorf("devices counted %+v", cnt)
			}
			if code, body := post(t, c, base+wire.NewToken(), `{"text":"hi"}`); code != http.StatusNotFound || !strings.Contains(body, "no_device") {
				t.Errorf("unknown token = %d %q, want 404 no_device", code, body)
			}
			if code, _ := post(t, c, "https://"+addr.String()+"/other", `{}`); code != http.StatusNotFound {
				t.Errorf("POST /other = %d, want 404", code)
			}

			// A second login with a token replaces the first session, and
			// webhooks reach the new one.
			tok := wire.NewToken()
			opt := device.Options{TLS: clientTLS, Transport: kindOf(kind == FloorWebTransport, kind == FloorWebSocket)}
			first, err := device.Dial(ctx, addr.String(), tok, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			served := make(chan error, 1)
			go func() { served <- first.Serve(ctx, replying(`"first"`)) }()
			second, err := device.Dial(ctx, addr.String(), tok, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			select {
			case err := <-served:
				if !errors.Is(err, device.ErrReplaced) {
					t.Errorf("the first session ended with %v, want %v", err, device.ErrReplaced)
				}
			case <-ctx.Done():
				t.Fatal("the first session was not closed by the second login")
			}
			served2 := make(chan error, 1)
			go func() { served2 <- second.Serve(ctx, replying(`"second"`)) }()
			if code, body := post(t, c, base+tok, `{"text":"hi"}`); code != 200 || body != `"second"` {
				t.Errorf("webhook after the takeover = %d %q, want 200 from the second session", code, body)
			}

			c.CloseIdleConnections()
			sw.Close()
			stop()
			select {
			case <-done:
			case <-time.After(2 * baselineDrain):
				t.Fatal("floor did not shut down")
			}
			// Shutting down closes the sessions still logged in.
			select {
			case <-served2:
			case <-ctx.Done():
				t.Fatal("the floor's shutdown left a session open")
			}
		})
	}
}

func TestFloorMainUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{FloorFlag},
		{FloorFlag, "tcp", "--listen", "127.0.0.1:0", "--cert", "c.pem", "--key", "k.pem"},
		{FloorFlag, FloorQUIC, "--cert", "c.pem", "--key", "k.pem"},
		{FloorFlag, FloorQUIC, "--listen", "127.0.0.1:0", "--key", "k.pem"},
		append(FloorArgs(FloorQUIC, "127.0.0.1:0", "c.pem", "k.pem"), "extra"),
		{FloorFlag, FloorQUIC, "--nope"},
	} {
		if code := floorMain(args, nil, io.Discard, io.Discard); code != 2 {
			t.Errorf("floorMain(%q) = %d, want 2", args, code)
		}
	}
	dir := t.TempDir()
	args := FloorArgs(FloorWebTransport, "127.0.0.1:0", dir+"/missing.pem", dir+"/missing-key.pem")
	if code := floorMain(args, nil, io.Discard, io.Discard); code != 1 {
		t.Errorf("missing certificate files: exit %d, want 1", code)
	}
}

// A floor as the suite runs it: a child process started with FloorArgs,
// answering on its address, stopped cleanly with Stop.
func TestFloorProcess(t *testing.T) {
	certFile, keyFile, err := WriteSelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-test.run=^TestProcHelper$", "--"}, FloorArgs(FloorQUIC, "127.0.0.1:0", certFile, keyFile)...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"=floor")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var pid int
	f, err := StartFloor(ctx, cmd, func(p int) error { pid = p; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if pid == 0 || pid != f.PID {
		t.Errorf("started hook got pid %d, process is %d", pid, f.PID)
	}
	c := tlsClient(t, certFile)
	if code, body := post(t, c, "https://"+f.Addr+"/cloud?mode=notify&token=nobody", `{}`); code != http.StatusNotFound || !strings.Contains(body, "no_device") {
		t.Errorf("unknown token = %d %q, want 404 no_device", code, body)
	}
	c.CloseIdleConnections()
	if err := f.Stop(); err != nil {
		t.Errorf("Stop: %v, want a clean exit", err)
	}
}
