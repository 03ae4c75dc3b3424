// Command relay runs a relay node: HTTPS webhooks on TCP and device sessions
// over QUIC on UDP, both on --listen, and health checks on --admin.
//
// Every flag can also be set from the environment: --max-body is
// RELAY_MAX_BODY, and so on. Flags win over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/internal/flagenv"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/transport"
	"github.com/pixelrelay/relay/webhook"
)

const envPrefix = "RELAY"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	flagenv.Exit("relay", run(ctx, os.Args[1:], os.Stderr))
}

// options are the parsed command line.
type options struct {
	cfg      server.Config
	certFile string
	keyFile  string
	stateDir string
	logLevel slog.Level

	takeoversPerMinute float64
	logFormat          string
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.StringVar(&c.Listen, "listen", server.DefaultListen, "`HOST:PORT` for HTTPS webhooks (TCP) and devices (QUIC, UDP)")
	fs.StringVar(&c.Admin, "admin", server.DefaultAdmin, "`HOST:PORT` of the plain-HTTP admin listener (/healthz, /readyz); keep it private; empty disables")
	fs.StringVar(&o.certFile, "cert", "", "PEM certificate chain `file`; without --cert/--key a development CA is used")
	fs.StringVar(&o.keyFile, "key", "", "PEM private key `file` for --cert")
	fs.StringVar(&o.stateDir, "state-dir", "./relay-state", "`dir` for the development CA and certificate (ca.pem is what devices trust)")
	fs.IntVar(&c.MaxBody, "max-body", transport.DefaultMaxBody, "largest webhook body in `bytes` (413 above)")
	fs.IntVar(&c.MaxInflight, "max-inflight", transport.DefaultMaxInflight, "messages in flight per device (503 above)")
	fs.IntVar(&c.MaxDevices, "max-devices", transport.DefaultMaxDevices, "live device sessions on this node; more logins are refused (relay_full) so devices go elsewhere")
	fs.Float64Var(&o.takeoversPerMinute, "takeovers-per-minute", transport.DefaultTakeoverRate*60, "how often a login may replace a live session with the same token, after --takeover-burst; past that the new login is refused and the live one stays (clone fights); 0 disables")
	fs.IntVar(&c.TakeoverBurst, "takeover-burst", transport.DefaultTakeoverBurst, "takeovers of one token allowed at once before --takeovers-per-minute applies")
	fs.DurationVar(&c.AckTimeout, "ack-timeout", webhook.DefaultAckTimeout, "wait for a device's reply (504 after)")
	fs.DurationVar(&c.LoginTimeout, "login-timeout", transport.DefaultLoginTimeout, "from QUIC handshake to a valid device login")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", transport.DefaultIdleTimeout, "QUIC idle timeout of device connections")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", server.DefaultHandshakeTimeout, "QUIC handshake timeout")
	fs.Float64Var(&c.HandshakeIPRate, "handshake-ip-rate", server.DefaultHandshakeIPRate, "new QUIC connections per second from one source (IPv4 address, IPv6 /64) after --handshake-ip-burst; more are refused; 0 disables")
	fs.IntVar(&c.HandshakeIPBurst, "handshake-ip-burst", server.DefaultHandshakeIPBurst, "new QUIC connections from one source allowed at once")
	fs.IntVar(&c.RetryAbove, "retry-above", server.DefaultRetryAbove, "new QUIC connections per second above which unvalidated sources must answer a Retry first (anti-amplification under floods)")
	fs.DurationVar(&c.HTTPReadTimeout, "http-read-timeout", server.DefaultHTTPReadTimeout, "reading one webhook request")
	fs.DurationVar(&c.HTTPIdleTimeout, "http-idle-timeout", server.DefaultHTTPIdleTimeout, "idle keep-alive webhook connection")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", server.DefaultMaxHeaderBytes, "request line and headers in `bytes` (431 above)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", server.DefaultDrainTimeout, "on SIGTERM, exit within this")
	fs.DurationVar(&c.ReconnectSpread, "reconnect-spread", server.DefaultReconnectSpread, "on SIGTERM, devices are told to return at random within this window")
	fs.Float64Var(&c.TokenRate, "token-rate", webhook.DefaultTokenRate, "webhooks per second per device token, refilling a bucket of --token-burst (429 rate_limited above); 0 disables")
	fs.IntVar(&c.TokenBurst, "token-burst", webhook.DefaultTokenBurst, "webhooks one device token may send at once before --token-rate applies; 0 disables the token limit")
	fs.Float64Var(&c.IPRate, "ip-rate", webhook.DefaultIPRate, "webhooks per second per source address (an IPv4 address or an IPv6 /64); generous, since many callers can share one egress address; 0 disables")
	fs.IntVar(&c.IPBurst, "ip-burst", webhook.DefaultIPBurst, "webhooks one source address may send at once before --ip-rate applies; 0 disables the source limit")
	fs.Float64Var(&c.MissRate, "miss-rate", webhook.DefaultMissRate, "404 no_device answers per second per source address; beyond them unknown tokens get 429 (slows token guessing); 0 disables")
	fs.IntVar(&c.MissBurst, "miss-burst", webhook.DefaultMissBurst, "404 no_device answers one source address may get at once before --miss-rate applies; 0 disables the miss limit")
	fs.Func("allow-origin", "web `origin` (https://host[:port]) whose pages may connect WebTransport devices, besides the relay's own page; repeat or separate with commas", func(v string) error {
		for _, origin := range strings.Split(v, ",") {
			if origin = strings.TrimSpace(origin); origin != "" {
				if !strings.HasPrefix(origin, "https://") && !strings.HasPrefix(origin, "http://") {
					return fmt.Errorf("origin %q: want scheme://host[:port]", origin)
				}
				c.AllowOrigins = append(c.AllowOrigins, strings.TrimRight(origin, "/"))
			}
		}
		return nil
	})
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	if err := flagenv.Parse(fs, args, envPrefix, "A cloud relay for AWTRIX-style pixel clocks behind NAT."); err != nil {
		return nil, err
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, errors.New("--cert and --key go together")
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	}
	for name, v := range map[string]int{"--max-body": c.MaxBody, "--max-inflight": c.MaxInflight, "--max-header-bytes": c.MaxHeaderBytes, "--max-devices": c.MaxDevices, "--retry-above": c.RetryAbove} {
		if v <= 0 {
			return nil, fmt.Errorf("%s must be positive", name)
		}
	}
	if c.MaxInflight > 0xffff {
		return nil, errors.New("--max-inflight must be at most 65535")
	}
	if c.MaxBody > server.MaxBodyLimit {
		return nil, fmt.Errorf("--max-body must be at most %d", server.MaxBodyLimit)
	}
	if err := takeovers(o); err != nil {
		return nil, err
	}
	if err := rateLimits(c); err != nil {
		return nil, err
	}
	return o, nil
}

// rateLimits checks the rate-limit flags and turns each 0 into "off": in
// server.Config zero takes the default and a negative value disables.
func rateLimits(c *server.Config) error {
	for _, l := range []struct {
		name  string
		rate  *float64
		burst *int
	}{
		{"token", &c.TokenRate, &c.TokenBurst},
		{"ip", &c.IPRate, &c.IPBurst},
		{"miss", &c.MissRate, &c.MissBurst},
		{"handshake-ip", &c.HandshakeIPRate, &c.HandshakeIPBurst},
	} {
		if !(*l.rate >= 0) { // NaN too
			return fmt.Errorf("--%s-rate must be a number >= 0 (0 disables)", l.name)
		}
		if *l.burst < 0 {
			return fmt.Errorf("--%s-burst must be >= 0 (0 disables)", l.name)
		}
		if *l.rate == 0 || *l.burst == 0 {
			*l.rate, *l.burst = -1, -1
		}
	}
	return nil
}

// takeovers turns --takeovers-per-minute into server.Config's per-second
// rate, 0 into "off".
func takeovers(o *options) error {
	c := &o.cfg
	if !(o.takeoversPerMinute >= 0) || c.TakeoverBurst < 0 {
		return errors.New("--takeovers-per-minute and --takeover-burst must be >= 0 (0 disables)")
	}
	c.TakeoverRate = o.takeoversPerMinute / 60
	if c.TakeoverRate == 0 || c.TakeoverBurst == 0 {
		c.TakeoverRate, c.TakeoverBurst = -1, -1
	}
	return nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	hopts := &slog.HandlerOptions{Level: o.logLevel}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if o.logFormat == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(h)
	o.cfg.Logger = log

	if o.certFile != "" {
		if o.cfg.TLS, err = certs.Load(o.certFile, o.keyFile); err != nil {
			return err
		}
	} else {
		dev, err := certs.LoadOrCreateDev(o.stateDir)
		if err != nil {
			return err
		}
		o.cfg.TLS = dev.TLS
		// Browsers take an untrusted WebTransport certificate only by its
		// hash, and only if it lives at most 14 days: the UDP side gets a
		// short-lived one from the same CA, which the device page learns.
		sl, err := dev.ShortLived()
		if err != nil {
			return err
		}
		o.cfg.UDPTLS, o.cfg.CertHashes = sl.TLSConfig(), sl.Hashes
		log.Info("using development certificates; devices must trust the CA", "ca", dev.CAFile, "sha256", dev.CAFingerprint, "created", dev.Created)
	}

	r, err := server.New(o.cfg)
	if err != nil {
		return err
	}
	attrs := []any{"listen", r.Addr().String()}
	if a := r.AdminAddr(); a != nil {
		attrs = append(attrs, "admin", a.String())
	}
	log.Info("relay listening (HTTPS on TCP, QUIC on UDP)", attrs...)
	return r.Run(ctx)
}
