// Command device is the agent that sits next to a clock (or is the device):
// it dials out to the relay over QUIC, logs in with its own token, and
// answers every webhook the relay hands it. By default it prints each
// message as a JSON line on stdout; with --forward it passes them to the
// clock's local AWTRIX HTTP API.
//
// SIGHUP rotates the token over the live connection. Flags can also come
// from DEVICE_* environment variables.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/pixelrelay/relay/awtrix"
	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/internal/flagenv"
)

const envPrefix = "DEVICE"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	flagenv.Exit("device", run(ctx, os.Args[1:], os.Stdout, os.Stderr, hup))
}

type options struct {
	relay      string
	ca         string
	serverName string
	tokenFile  string
	forward    string
	forwardAPI string
	transport  string
	keepAlive  time.Duration
	backoffMax time.Duration
	logLevel   slog.Level
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.relay, "relay", "localhost:8443", "relay `HOST:PORT` (UDP); several separated by commas, and a name with several addresses, are tried in turn, and a go-away moves to another")
	fs.StringVar(&o.transport, "transport", "quic", "quic (raw QUIC, ALPN awtrix-relay/1) or webtransport (HTTP/3 at https://RELAY/connect)")
	fs.StringVar(&o.serverName, "server-name", "", "`name` the relay's certificate must carry, when it differs from --relay's host: e.g. localhost for a development relay reached at another address; empty checks --relay's host")
	fs.StringVar(&o.ca, "ca", "", "PEM `file` of the CA that signed the relay's certificate (the relay's relay-state/ca.pem in development); empty uses the system roots")
	fs.StringVar(&o.tokenFile, "token-file", "device-token", "`file` holding the device token; created (mode 0600) on first run")
	fs.StringVar(&o.forward, "forward", "", "base `URL` of the clock's local HTTP API, e.g. http://192.168.1.50; empty prints messages on stdout")
	fs.StringVar(&o.forwardAPI, "forward-api", "v3", "the clock's API: v2 (AWTRIX 2, /api/v3/<mode>) or v3 (AWTRIX 3 firmware)")
	fs.DurationVar(&o.keepAlive, "keepalive", device.DefaultKeepAlive, "QUIC keep-alive period; below your NAT's UDP timeout")
	fs.DurationVar(&o.backoffMax, "backoff-max", device.DefaultBackoffMax, "longest wait between reconnect attempts")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	if err := flagenv.Parse(fs, args, envPrefix, "Connects a clock to the relay. SIGHUP rotates the token."); err != nil {
		return nil, err
	}
	if o.transport != "quic" && o.transport != "webtransport" {
		return nil, fmt.Errorf("--transport %q: want quic or webtransport", o.transport)
	}
	if o.forwardAPI != "v2" && o.forwardAPI != "v3" {
		return nil, fmt.Errorf("--forward-api %q: want v2 or v3", o.forwardAPI)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, hup <-chan os.Signal) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: o.serverName}
	if o.ca != "" {
		if tlsConf.RootCAs, err = certs.CAPool(o.ca); err != nil {
			return err
		}
	}
	var h device.Handler = &printer{w: stdout}
	if o.forward != "" {
		api := 3
		if o.forwardAPI == "v2" {
			api = 2
		}
		if h, err = awtrix.New(o.forward, api, nil); err != nil {
			return err
		}
	}
	store := device.FileStore{Path: o.tokenFile}
	tok, err := store.Load()
	if err != nil {
		return err
	}
	// The token is the device's to show: the person who owns the clock
	// needs it to build webhooks. Only this agent prints it.
	log.Info("device token (keep it secret)", "token", tok, "file", o.tokenFile)

	agent := &device.Agent{
		Addr:    o.relay,
		Options: device.Options{TLS: tlsConf, Agent: "awtrix-relay-device/1", KeepAlive: o.keepAlive, WebTransport: o.transport == "webtransport"},
		Handler: h,
		Tokens:  store,
		Backoff: device.Backoff{Max: o.backoffMax},
		Logger:  log,
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
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

// printer is the default handler: one JSON line per message on stdout.
type printer struct {
	mu sync.Mutex // serializes lines
	w  io.Writer
}

func (p *printer) HandleMessage(_ context.Context, mode string, body []byte) (int, []byte) {
	line, _ := json.Marshal(struct {
		Mode string          `json:"mode"`
		Body json.RawMessage `json:"body"`
	}{mode, body})
	p.mu.Lock()
	_, err := p.w.Write(append(line, '\n'))
	p.mu.Unlock()
	if err != nil {
		return 500, []byte(`{"error":"device could not write the message","code":"device_error"}`)
	}
	return 200, []byte(`{"ok":true}`)
}
