package loadtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
)

// helperEnv makes the test binary a child process for these tests (the
// os/exec tests' pattern): "baseline" runs BaselineMain, "nats" NATSMain and
// "floor" FloorMain on the arguments after "--", "wait" exits at end of
// stdin.
const helperEnv = "LOADTEST_TEST_HELPER"

// TestProcHelper is not a test: it is the child process of the tests that
// need one, and returns at once when run as a test.
func TestProcHelper(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "baseline":
		os.Exit(BaselineMain(flag.Args()))
	case "nats":
		os.Exit(NATSMain(flag.Args()))
	case "floor":
		os.Exit(FloorMain(flag.Args()))
	case "wait":
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
}

// tlsClient trusts the PEM certificates in caFile.
func tlsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in", caFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// do sends one request and returns the status, body and TLS version.
func do(t *testing.T, c *http.Client, method, url string) (int, string, uint16) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{"text":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.TLS.Version
}

func TestBaselineServe(t *testing.T) {
	dev, err := certs.LoadOrCreateDev(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	addr, done, err := serveBaseline(ctx, "127.0.0.1:0", dev.TLS.Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	c := tlsClient(t, dev.CAFile)
	base := "https://" + addr.String()

	code, body, version := do(t, c, "POST", base+"/cloud?mode=notify&token=x")
	if code != 200 || body != `{"ok":true}` {
		t.Errorf("POST /cloud = %d %q, want 200 {\"ok\":true}", code, body)
	}
	if version != tls.VersionTLS13 {
		t.Errorf("TLS version %#x, want 1.3", version)
	}
	if code, _, _ := do(t, c, "GET", base+"/cloud"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /cloud = %d, want 405", code)
	}
	if code, _, _ := do(t, c, "POST", base+"/other"); code != http.StatusNotFound {
		t.Errorf("POST /other = %d, want 404", code)
	}

	c.CloseIdleConnections()
	cancel()
	select {
	case <-done:
	case <-time.After(2 * baselineDrain):
		t.Fatal("baseline did not shut down")
	}
	if _, err := c.Post(base+"/cloud", "application/json", nil); err == nil {
		t.Error("baseline still answers after ctx ended")
	}
}

// The baseline as the core runs it: a child process started with
// BaselineArgs, sampled from /proc, stopped with Stop.
func TestBaselineProcess(t *testing.T) {
	certFile, keyFile, err := WriteSelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-test.run=^TestProcHelper$", "--"}, BaselineArgs("127.0.0.1:0", certFile, keyFile)...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"=baseline")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b, err := StartBaseline(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	s, err := StartSampler(b.PID, 10*time.Millisecond)
	if err != nil {
		b.Stop()
		t.Fatal(err)
	}

	c := tlsClient(t, certFile)
	for range 50 {
		if code, body, _ := do(t, c, "POST", "https://"+b.Addr+"/cloud"); code != 200 || body != `{"ok":true}` {
			t.Fatalf("POST /cloud = %d %q", code, body)
		}
	}
	c.CloseIdleConnections()
	st := s.Stop()
	if st.RSSMB <= 0 || st.Samples < 2 {
		t.Errorf("baseline process stats %+v", st)
	}
	t.Logf("baseline %s pid %d: %+v", b.Addr, b.PID, st)

	if err := b.Stop(); err != nil {
		t.Errorf("Stop: %v, want a clean exit", err)
	}
}

func TestBaselineMainUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{BaselineFlag},
		{BaselineFlag, "127.0.0.1:0"},
		{BaselineFlag, "127.0.0.1:0", "--cert", "c.pem", "--key", "k.pem", "extra"},
	} {
		if code := baselineMain(args, nil, io.Discard, io.Discard); code != 2 {
			t.Errorf("BaselineMain(%q) = %d, want 2", args, code)
		}
	}
	dir := t.TempDir()
	args := BaselineArgs("127.0.0.1:0", dir+"/missing.pem", dir+"/missing-key.pem")
	if code := baselineMain(args, nil, io.Discard, io.Discard); code != 1 {
		t.Errorf("missing certificate files: exit %d, want 1", code)
	}
}

func TestBaselineStartFails(t *testing.T) {
	// A child that exits without its ready line.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Stderr = io.Discard
	b, err := StartBaseline(t.Context(), cmd)
	if err == nil {
		b.Stop()
		t.Fatal("StartBaseline succeeded for a process that never listened")
	}
}
