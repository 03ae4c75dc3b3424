package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pixelrelay/relay/internal/relaytest"
)

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
	if o.cfg.MaxBody != 1024 || o.cfg.AckTimeout != 3*time.Second {
		t.Fatalf("max body %d, ack timeout %v; want 1024 from env, 3s from the flag", o.cfg.MaxBody, o.cfg.AckTimeout)
	}
}

func TestRateLimitFlags(t *testing.T) {
	o, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.TokenRate != 20 || c.TokenBurst != 40 || c.IPRate != 200 || c.IPBurst != 400 || c.MissRate != 5 || c.MissBurst != 20 {
		t.Fatalf("defaults: token %v/%d, ip %v/%d, miss %v/%d; want 20/40, 200/400, 5/20",
			c.TokenRate, c.TokenBurst, c.IPRate, c.IPBurst, c.MissRate, c.MissBurst)
	}
	t.Setenv("RELAY_IP_RATE", "1000")
	if o, err = parse([]string{"--token-rate", "0", "--miss-burst", "0", "--token-burst", "5"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	c = o.cfg
	// 0 disables: server.Config spells "off" as negative, since its zero
	// means "default".
	if c.TokenRate >= 0 || c.TokenBurst >= 0 || c.MissRate >= 0 || c.MissBurst >= 0 {
		t.Fatalf("token %v/%d, miss %v/%d; want both off (negative)", c.TokenRate, c.TokenBurst, c.MissRate, c.MissBurst)
	}
	if c.IPRate != 1000 || c.IPBurst != 400 {
		t.Fatalf("ip %v/%d; want 1000 from the environment, 400", c.IPRate, c.IPBurst)
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
	for _, args := range [][]string{
		{"--max-body", "0"}, {"--max-body", "2000000"}, {"--max-inflight", "-1"}, {"--max-inflight", "70000"},
		{"--token-rate", "-1"}, {"--ip-burst", "-5"}, {"--miss-rate", "NaN"}, {"--ip-rate", "lots"},
		{"--cert", "x.pem"}, {"--log-format", "xml"}, {"--allow-origin", "clock.example"}, {"--log-level", "loud"}, {"stray"},
	} {
		if _, err := parse(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestRunServesAndStops(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &relaytest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--state-dir", filepath.Join(dir, "st")}, logs)
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
}
