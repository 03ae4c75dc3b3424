// Command device is the agent that sits next to a clock (or is the device):
// it dials out to the relay over QUIC, logs in with its own token, and
// answers every webhook the relay hands it. By default it prints each
// message as a JSON line on stdout; with --forward it passes them to the
// clock's local AWTRIX HTTP API.
//
// SIGUSR1 rotates the token over the live connection (systemctl kill
// --signal=SIGUSR1 awtrix-device); SIGHUP does not. Flags can also come
// from DEVICE_* environment variables.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pixelrelay/relay/awtrix"
	"github.com/pixelrelay/relay/certs/trust"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/flagenv"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/wire"

	// The root certificates to use when the system has none: a FROM scratch
	// image (make image) must still verify Let's Encrypt and NATS servers.
	_ "golang.org/x/crypto/x509roots/fallback"
)

const envPrefix = "DEVICE"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGHUP)
	flagenv.Exit("device", run(ctx, os.Args[1:], os.Stdout, os.Stderr, sigs))
}

type options struct {
	relay      string
	ca         string
	serverName string
	tokenFile  string
	stateDir   string
	forward    string
	forwardAPI string
	clockWait  time.Duration
	destroy    bool
	transport  string
	keepAlive  time.Duration
	backoffMax time.Duration
	autoRetry  time.Duration
	logLevel   slog.Level
}

// kind is the transport --transport names; auto starts with QUIC.
func (o *options) kind() transport.Kind {
	k, _ := transport.ParseKind(o.transport)
	return k
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.relay, "relay", "localhost:8443", "relay `HOST:PORT` (UDP); several separated by commas, and a name with several addresses, are tried in turn, and a go-away moves to another")
	fs.StringVar(&o.transport, "transport", "auto", "auto (QUIC, and WebSocket after 300 ms if QUIC has not logged in: networks that block UDP), quic (raw QUIC, ALPN awtrix-relay/1), webtransport (HTTP/3 at https://RELAY/connect) or websocket (wss://RELAY/connect over TCP)")
	fs.StringVar(&o.serverName, "server-name", "", "`name` the relay's certificate must carry, when it differs from --relay's host: e.g. localhost for a development relay reached at another address; empty checks --relay's host")
	fs.StringVar(&o.ca, "ca", "", "PEM `file` of the CA that signed the relay's certificate (the relay's relay-state/ca.pem in development); empty uses the system roots")
	fs.StringVar(&o.stateDir, "state-dir", defaultStateDir(), "`dir` for the device's state: its token (mode 0600); default $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/awtrix-device or ~/.local/state/awtrix-device")
	fs.StringVar(&o.tokenFile, "token-file", "", "`file` holding the device token, created (mode 0600) on first run and its token printed then; default STATE-DIR/token")
	fs.StringVar(&o.forward, "forward", "", "base `URL` of the clock's local HTTP API, e.g. http://192.168.1.50; empty prints messages on stdout")
	fs.StringVar(&o.forwardAPI, "forward-api", "auto", "the clock's API: auto (ask the clock at the first message), v2 (the AWTRIX 2 host, /api/v3/<mode>) or v3 (the AWTRIX 3 firmware)")
	fs.DurationVar(&o.clockWait, "clock-timeout", awtrix.DefaultTimeout, "longest wait for the clock's answer to one message; keep it below the relay's --ack-timeout (5 s) so that a slow clock is reported as clock_timeout, not as the relay's 504")
	fs.BoolVar(&o.destroy, "allow-destructive", false, "let webhooks erase the clock, reset its settings and update its firmware (modes erase, resetSettings, doupdate); refused with 403 otherwise")
	fs.DurationVar(&o.keepAlive, "keepalive", device.DefaultKeepAlive, "QUIC keep-alive period; below your NAT's UDP timeout")
	fs.DurationVar(&o.backoffMax, "backoff-max", device.DefaultBackoffMax, "longest wait between reconnect attempts")
	fs.DurationVar(&o.autoRetry, "auto-retry", device.DefaultAutoRetry, "--transport auto: how often a session that fell back to WebSocket tries QUIC again, moving back (with no message lost) once it logs in")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	if err := flagenv.Parse(fs, args, envPrefix, "Connects a clock to the relay. SIGUSR1 rotates the token."); err != nil {
		return nil, err
	}
	if o.transport != "auto" {
		// mqtt is the relay's side for stock clocks: no agent dials it.
		if k, err := transport.ParseKind(o.transport); err != nil || k == transport.KindMQTT {
			return nil, fmt.Errorf("--transport %q: want auto, quic, webtransport or websocket", o.transport)
		}
	}
	if o.forwardAPI != "auto" && o.forwardAPI != "v2" && o.forwardAPI != "v3" {
		return nil, fmt.Errorf("--forward-api %q: want auto, v2 or v3", o.forwardAPI)
	}
	if o.clockWait <= 0 {
		return nil, fmt.Errorf("--clock-timeout %v: must be positive", o.clockWait)
	}
	if o.autoRetry <= 0 {
		return nil, fmt.Errorf("--auto-retry %v: must be positive", o.autoRetry)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) error {
	if len(args) > 0 && args[0] == "token" {
		return newToken(args[1:], stdout, stderr)
	}
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: o.serverName}
	if o.ca != "" {
		if tlsConf.RootCAs, err = trust.CAPool(o.ca); err != nil {
			return err
		}
	}
	var h device.Handler = &printer{w: stdout}
	if o.forward != "" {
		api := map[string]int{"auto": awtrix.APIAuto, "v2": awtrix.API2, "v3": awtrix.API3}[o.forwardAPI]
		if h, err = awtrix.New(o.forward, awtrix.Options{API: api, Timeout: o.clockWait, AllowDestructive: o.destroy, Logger: log}); err != nil {
			return err
		}
	}
	if o.tokenFile == "" {
		if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
			return fmt.Errorf("--state-dir: %w", err)
		}
		o.tokenFile = filepath.Join(o.stateDir, "token")
	}
	store := device.FileStore{Path: o.tokenFile}
	_, statErr := os.Stat(o.tokenFile)
	tok, err := store.Load()
	if err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		// The token is the device's to show, once: the person who owns the
		// clock needs it to build webhooks. Later starts name the file.
		log.Info("new device token (keep it secret; it is also in the file)", "token", tok, "file", o.tokenFile)
	} else {
		log.Info("device token loaded", "file", o.tokenFile)
	}

	agent := &device.Agent{
		Addr:      o.relay,
		Options:   device.Options{TLS: tlsConf, Agent: "awtrix-relay-device/1", KeepAlive: o.keepAlive, Transport: o.kind()},
		Auto:      o.transport == "auto",
		AutoRetry: o.autoRetry,
		Handler:   h,
		Tokens:    store,
		Backoff:   device.Backoff{Max: o.backoffMax},
		Logger:    log,
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-sigs:
				if sig != syscall.SIGUSR1 {
					log.Info("signal ignored; SIGUSR1 rotates the token", "signal", sig.String())
					continue
				}
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				tok, err := agent.Rotate(rctx)
				cancel()
				if err != nil {
					log.Error("token rotation failed; the old token stays valid", "err", err)
					continue
				}
				log.Info("token rotated (the old one no longer works)", "token", tok, "file", o.tokenFile)
			}
		}
	}()
	return agent.Run(ctx)
}

// newToken is the token subcommand: a fresh device token on stdout, for a
// stock clock that logs in over MQTT with it as its password (no agent
// runs, so nothing else makes one), and the clock's settings on stderr.
func newToken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("device token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	relay := fs.String("relay", "RELAY", "the relay's `host`, for the settings printed on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("device token: unexpected argument %q", fs.Arg(0))
	}
	tok := wire.NewToken()
	if _, err := fmt.Fprintln(stdout, tok); err != nil {
		return err
	}
	fmt.Fprintf(stderr, `A stock AWTRIX clock uses this token with no agent: in its web UI, MQTT:
  Broker %s   Port 1883   Username any word (e.g. awtrix)   Password the token above
  and a prefix of your choice. Webhooks: https://%s:8443/cloud?mode=notify&token=TOKEN
Keep the token secret: whoever has it can send to the clock.
`, *relay, *relay)
	return nil
}

// defaultStateDir is where the device keeps its token when no flag says:
// systemd's StateDirectory, else the XDG state directory.
func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "awtrix-device")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "awtrix-device")
	}
	return "awtrix-device"
}

// printer is the default handler: one JSON line per message on stdout.
type printer struct {
	mu sync.Mutex // serializes lines
	w  io.Writer
}

func (p *printer) HandleMessage(_ context.Context, m wire.Message) (int, []byte) {
	body := json.RawMessage(m.Body)
	if len(body) == 0 { // a read, or a command without arguments
		body = json.RawMessage("null")
	}
	line, err := json.Marshal(struct {
		Mode  string          `json:"mode"`
		Query string          `json:"query,omitempty"`
		Body  json.RawMessage `json:"body"`
	}{m.Mode, m.Query, body})
	if err == nil {
		p.mu.Lock()
		_, err = p.w.Write(append(line, '\n'))
		p.mu.Unlock()
	}
	if err != nil {
		return 500, []byte(`{"error":"device could not write the message","code":"device_error"}`)
	}
	return 200, []byte(`{"ok":true}`)
}
