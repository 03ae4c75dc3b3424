// Command relay runs a relay node: HTTPS webhooks and WebSocket device
// sessions on TCP, QUIC and WebTransport device sessions and HTTP/3 webhooks
// on UDP, both on --listen; health checks and metrics on --admin.
// --check-config runs the checks a start runs, and creates nothing.
//
// Every flag can also be set from the environment: --max-body is
// RELAY_MAX_BODY, and so on. Flags win over the environment.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/cluster"
	"github.com/pixelrelay/relay/internal/flagenv"
	"github.com/pixelrelay/relay/internal/setting"
	"github.com/pixelrelay/relay/server"
	"github.com/pixelrelay/relay/wire"
	"github.com/quic-go/quic-go"

	// The root certificates to use when the system has none: a FROM scratch
	// image (make image) must still verify Let's Encrypt and NATS servers.
	_ "golang.org/x/crypto/x509roots/fallback"
)

const envPrefix = "RELAY"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	flagenv.Exit("relay", run(ctx, os.Args[1:], os.Stdout, os.Stderr, hup))
}

// options are the parsed command line.
type options struct {
	cfg         server.Config
	certs       certs.Config // Dir and HTTP01 follow stateDir and acmeHTTP
	stateDir    string
	acmeHTTP    string
	checkConfig bool
	logLevel    slog.Level
	logFormat   string
	flags       *flag.FlagSet // every setting, for --check-config to print
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{cfg: server.DefaultConfig()}
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	o.flags = fs
	fs.SetOutput(stderr)
	c, sc, wc := &o.cfg, &o.cfg.Session, &o.cfg.Webhook
	fs.StringVar(&c.Listen, "listen", c.Listen, "`HOST:PORT` for HTTPS webhooks (TCP) and devices (QUIC, UDP); \":443\" for every interface (a bare port is refused)")
	fs.StringVar(&c.Admin, "admin", c.Admin, "`HOST:PORT` of the plain-HTTP admin listener (/healthz, /readyz, /metrics); keep it private; empty disables; a bare port is refused")
	fs.StringVar(&o.certs.CertFile, "cert", "", "PEM certificate chain `file`; without --cert/--key a development CA is used")
	fs.StringVar(&o.certs.KeyFile, "key", "", "PEM private key `file` for --cert")
	fs.BoolVar(&o.certs.Watch, "cert-watch", true, "reload --cert/--key for new handshakes when either file changes (SIGHUP always reloads them)")
	fs.StringVar(&o.stateDir, "state-dir", "./relay-state", "`dir` for the ACME account and certificates, or the development CA and certificate (ca.pem is what devices trust)")
	fs.Var(funcFlag{func(v string) error {
		for _, d := range strings.Split(v, ",") {
			if d = strings.TrimSpace(d); d != "" {
				o.certs.ACME.Domains = append(o.certs.ACME.Domains, d)
			}
		}
		return nil
	}, func() string { return strings.Join(o.certs.ACME.Domains, ",") }},
		"acme-domain", "`name` to obtain and renew a certificate for from an ACME CA (TLS-ALPN-01 on the TCP port); repeat or separate with commas; excludes --cert")
	fs.StringVar(&o.certs.ACME.CA, "acme-ca", "https://acme-v02.api.letsencrypt.org/directory", "ACME directory `URL` (Let's Encrypt's production one by default)")
	fs.StringVar(&o.certs.ACMERoots, "acme-ca-roots", "", "PEM `file` of the CA that signed the ACME directory's HTTPS certificate, for a private ACME server (step-ca, Pebble); empty uses the system roots")
	fs.StringVar(&o.certs.ACME.Email, "acme-email", "", "contact `address` for the ACME account (expiry warnings)")
	fs.StringVar(&o.acmeHTTP, "acme-http", "", "`HOST:PORT` (usually :80) to answer ACME HTTP-01 challenges on, and send everything else to HTTPS; empty: TLS-ALPN-01 only")
	fs.BoolVar(&o.checkConfig, "check-config", false, "check the flags, the environment, --config, the certificates and the keys in --state-dir as a start would, creating no file; print every setting (paths, never secrets) and \"configuration OK\", and exit")
	fs.IntVar(&wc.MaxBody, "max-body", wc.MaxBody, "largest webhook body in `bytes` (413 above)")
	fs.IntVar(&sc.MaxInflight, "max-inflight", sc.MaxInflight, "messages in flight per device (503 above)")
	fs.Var(count{&sc.MaxDevices}, "max-devices", "live device sessions on this node; more logins are refused (relay_full) so devices go elsewhere; 0 disables the cap")
	fs.Var(perUnit{&sc.Takeovers.PerSecond, time.Minute}, "takeovers-per-minute", "how often a login may replace a live session with the same token, after --takeover-burst; past that the new login is refused and the live one stays (clone fights); 0 disables")
	fs.Var(count{&sc.Takeovers.Burst}, "takeover-burst", "takeovers of one token allowed at once before --takeovers-per-minute applies; 0 disables")
	fs.Var(perUnit{&sc.Rotations.PerSecond, time.Minute}, "rotations-per-minute", "ROTATEs one device session may send, after --rotation-burst, rotated or refused (bad_token, token_in_use); past that ROTATE is refused (rate_limited); 0 disables")
	fs.Var(count{&sc.Rotations.Burst}, "rotation-burst", "ROTATEs one session may send at once before --rotations-per-minute applies; 0 disables")
	fs.DurationVar(&wc.AckTimeout, "ack-timeout", wc.AckTimeout, "wait for a device's reply (504 after)")
	fs.DurationVar(&sc.LoginTimeout, "login-timeout", sc.LoginTimeout, "from QUIC handshake to a valid device login")
	fs.DurationVar(&sc.IdleTimeout, "idle-timeout", sc.IdleTimeout, "QUIC idle timeout of device connections")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", c.HandshakeTimeout, "QUIC handshake timeout")
	fs.DurationVar(&c.WebSocketWriteTimeout, "websocket-write-timeout", c.WebSocketWriteTimeout, "a WebSocket device that takes no data for this long is closed")
	fs.Var(perUnit{&c.HandshakesPerSource.PerSecond, time.Second}, "handshake-ip-rate", "new QUIC connections per second from one source (IPv4 address, IPv6 /64) after --handshake-ip-burst; more are refused; 0 disables")
	fs.Var(count{&c.HandshakesPerSource.Burst}, "handshake-ip-burst", "new QUIC connections from one source allowed at once; 0 disables")
	fs.Var(count{&c.RetryAbove}, "retry-above", "new QUIC connections per second above which unvalidated sources must answer a Retry first (anti-amplification under floods); 0 disables")
	fs.Var(count{&c.KnownSources}, "known-sources", "source addresses remembered for --known-source-ttl after a completed QUIC handshake or an ended session: they skip the --retry-above Retry (a fleet coming back after an outage); 0 disables")
	fs.DurationVar(&c.KnownSourceTTL, "known-source-ttl", c.KnownSourceTTL, "how long a source stays known (--known-sources)")
	fs.DurationVar(&c.HTTPReadTimeout, "http-read-timeout", c.HTTPReadTimeout, "reading one webhook request")
	fs.DurationVar(&c.HTTPIdleTimeout, "http-idle-timeout", c.HTTPIdleTimeout, "idle keep-alive webhook connection")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", c.MaxHeaderBytes, "request line and headers in `bytes` (431 above)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "on SIGTERM, exit within this")
	fs.DurationVar(&c.ReconnectSpread, "reconnect-spread", c.ReconnectSpread, "on SIGTERM, devices are told to return at random within this window")
	fs.Var(funcFlag{func(v string) error {
		if v != "" {
			if err := wire.CheckRedirect(v); err != nil {
				return err
			}
		}
		sc.Redirect = v
		return nil
	}, func() string { return sc.Redirect }},
		"goaway-redirect", "`HOST:PORT` (IPv6 as [ADDR]:PORT) that devices sent away on SIGTERM dial next, once; empty: the address they dialled")
	fs.Var(perUnit{&wc.PerToken.PerSecond, time.Second}, "token-rate", "webhooks per second per device token, refilling a bucket of --token-burst (429 rate_limited above); 0 disables")
	fs.Var(count{&wc.PerToken.Burst}, "token-burst", "webhooks one device token may send at once before --token-rate applies; 0 disables the token limit")
	fs.Var(perUnit{&wc.PerSource.PerSecond, time.Second}, "ip-rate", "webhooks per second per source address (an IPv4 address or an IPv6 /64); generous, since many callers can share one egress address; 0 disables")
	fs.Var(count{&wc.PerSource.Burst}, "ip-burst", "webhooks one source address may send at once before --ip-rate applies; 0 disables the source limit")
	fs.Var(perUnit{&wc.Misses.PerSecond, time.Second}, "miss-rate", "404 no_device answers per second per source address; beyond them unknown tokens get 429 (slows token guessing); 0 disables")
	fs.Var(count{&wc.Misses.Burst}, "miss-burst", "404 no_device answers one source address may get at once before --miss-rate applies; 0 disables the miss limit")
	fs.Var(funcFlag{func(v string) error {
		for _, origin := range strings.Split(v, ",") {
			if origin = strings.TrimSpace(origin); origin != "" {
				if !strings.HasPrefix(origin, "https://") && !strings.HasPrefix(origin, "http://") {
					return fmt.Errorf("origin %q: want scheme://host[:port]", origin)
				}
				c.AllowOrigins = append(c.AllowOrigins, strings.TrimRight(origin, "/"))
			}
		}
		return nil
	}, func() string { return strings.Join(c.AllowOrigins, ",") }},
		"allow-origin", "web `origin` (https://host[:port]) whose pages may connect WebTransport or WebSocket devices, besides the relay's own page; repeat or separate with commas")
	cc := &o.cfg.Cluster
	fs.Var(funcFlag{func(v string) error {
		cc.URLs = cc.URLs[:0]
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				cc.URLs = append(cc.URLs, u)
			}
		}
		return nil
	}, func() string { return strings.Join(cc.URLs, ",") }},
		"nats", "NATS server `URL`s (nats://host:4222, tls://host:4222; several separated by commas): makes this node one of a cluster; empty: a node alone that never touches NATS")
	fs.StringVar(&cc.Creds, "nats-creds", "", "NATS credentials `file` (user JWT and NKey seed)")
	fs.StringVar(&cc.CA, "nats-ca", "", "PEM `file` of the CA that signed the NATS servers' certificates (TLS)")
	fs.StringVar(&cc.Cert, "nats-cert", "", "PEM client certificate `file` for NATS servers that ask for one")
	fs.StringVar(&cc.Key, "nats-key", "", "PEM private key `file` for --nats-cert")
	fs.StringVar(&cc.Subject, "nats-subject", cc.Subject, "`prefix` of the cluster's NATS subjects; the nodes of one cluster share it")
	fs.StringVar(&cc.Name, "nats-name", "", "this node's `name` in NATS monitoring; empty: the host name")
	fs.IntVar(&cc.MaxServing, "nats-max-serving", cc.MaxServing, "`requests` from other nodes, for this node's devices, served at once; more are answered 503 busy at once")
	fs.IntVar(&cc.Pending, "nats-pending", cc.Pending, fmt.Sprintf("`requests` from other nodes, for any of this node's devices, that may wait at once to be served or answered busy (1..%d); one that arrives while they are full is dropped unanswered, its caller waits for its deadline (504), and relay_cluster_dropped_total counts it", cluster.MaxPending))
	fs.BoolVar(&c.ReadyNeedsCluster, "ready-needs-cluster", false, "/readyz answers 503 while this clustered node has no NATS connection (it still serves its own devices)")
	fs.Var(funcFlag{func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
				return fmt.Errorf("%q: want a CIDR (10.0.0.0/8) or an address", p)
			}
			c.ProxyFrom = append(c.ProxyFrom, p)
		}
		return nil
	}, func() string { return strings.Join(c.ProxyFrom, ",") }},
		"proxy-from", "`CIDR` or address of a TCP load balancer that sends the PROXY protocol (v1 or v2): its header names the caller for rate limits; a header from anyone else closes the connection; repeat or separate with commas")
	mc := &c.MQTT
	fs.StringVar(&c.MQTTListen, "mqtt", "", "`HOST:PORT` (usually :1883) where stock AWTRIX clocks log in with their own MQTT client, the relay as their broker: plain MQTT 3.1.1 over TCP, the password is the device token; empty: off")
	fs.StringVar(&c.MQTTSListen, "mqtts", "", "`HOST:PORT` (usually :8883) for MQTT over TLS with the relay's certificate, for clients that can; empty: off")
	fs.BoolVar(&c.MQTTOnListen, "mqtt-on-listen", false, "also take plain MQTT on --listen's TCP port, told from TLS by the first byte: for clocks on networks that block 1883 (the clock's MQTT port is then --listen's)")
	fs.IntVar(&mc.MaxPacket, "mqtt-max-packet", mc.MaxPacket, "largest MQTT packet a clock may send, in `bytes` after its fixed header; a larger one closes the connection")
	fs.DurationVar(&mc.ConnectTimeout, "mqtt-connect-timeout", mc.ConnectTimeout, "from an accepted MQTT connection (its TLS handshake included) to its CONNECT")
	fs.DurationVar(&mc.MaxKeepAlive, "mqtt-max-keepalive", mc.MaxKeepAlive, "longest MQTT keep-alive honoured: a clock asking for none or a longer one is closed after 1.5 times this of silence")
	fs.DurationVar(&mc.WriteTimeout, "mqtt-write-timeout", mc.WriteTimeout, "an MQTT clock that takes no data for this long is closed")
	fs.DurationVar(&mc.AckTimeout, "mqtt-ack-timeout", mc.AckTimeout, "wait for an MQTT clock's confirmation (AWTRIX 3's screen, AWTRIX NG's result), 504 after; keep it below --ack-timeout")
	fs.TextVar(&mc.Ack, "mqtt-ack", mc.Ack, "what confirms a webhook to an AWTRIX 3 clock, which acknowledges nothing over MQTT: screen (send sendscreen after the command, answer when the screen comes) or sent (answer once the command is written)")
	fs.BoolVar(&mc.AllowDisruptive, "mqtt-allow-disruptive", false, "let webhooks reboot, sleep, update, reset or reconfigure MQTT clocks (reboot, sleep, settings writes; AWTRIX 3's doupdate and apps writes; AWTRIX NG's resetSettings and reorder); refused with 403 otherwise, since plain MQTT can be read and forged on the way")
	fs.IntVar(&mc.MaxConns, "mqtt-max-conns", mc.MaxConns, "MQTT `connections` open at once, logged in or not; more get CONNACK server unavailable")
	fs.Var(perUnit{&mc.ConnectsPerSource.PerSecond, time.Second}, "mqtt-connect-ip-rate", "new MQTT connections per second from one source (IPv4 address, IPv6 /64) after --mqtt-connect-ip-burst; more are closed at once; 0 disables")
	fs.Var(count{&mc.ConnectsPerSource.Burst}, "mqtt-connect-ip-burst", "new MQTT connections from one source allowed at once; 0 disables")
	fs.Var(perUnit{&mc.Pings.PerSecond, time.Second}, "mqtt-ping-rate", "PINGREQs per second one MQTT connection may send after --mqtt-ping-burst; past that it is closed; 0 disables")
	fs.Var(count{&mc.Pings.Burst}, "mqtt-ping-burst", "PINGREQs one MQTT connection may send at once; 0 disables")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	if err := flagenv.Parse(fs, args, envPrefix, "A cloud relay for AWTRIX-style pixel clocks behind NAT."); err != nil {
		return nil, err
	}
	// The certificates' settings are checked, with the files they name,
	// by certs.Config.Check (check).
	o.certs.Dir, o.certs.HTTP01 = o.stateDir, o.acmeHTTP != ""
	if len(cc.URLs) == 0 && (cc.Creds != "" || cc.CA != "" || cc.Cert != "" || c.ReadyNeedsCluster) {
		return nil, errors.New("--nats-creds, --nats-ca, --nats-cert and --ready-needs-cluster need --nats")
	}
	if cc.Name == "" {
		cc.Name, _ = os.Hostname()
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	}
	// Sizes, timeouts and the rest are checked by the configurations'
	// Check, once, for a start and --check-config alike (check).
	return o, nil
}

// funcFlag is a flag that parses into options with set and reports the
// value it made with get (flag.Func reports nothing), for --check-config.
type funcFlag struct {
	set func(string) error
	get func() string
}

func (v funcFlag) Set(s string) error { return v.set(s) }

func (v funcFlag) String() string {
	if v.get == nil { // the flag package's zero value
		return ""
	}
	return v.get()
}

// perUnit is a flag that sets a rate per second from a count per unit:
// --takeovers-per-minute 1 is 1/60 per second. Like every rate flag it
// takes a number >= 0, and 0 turns its limit off.
type perUnit struct {
	perSecond *float64
	unit      time.Duration
}

func (v perUnit) String() string {
	if v.perSecond == nil {
		return ""
	}
	return strconv.FormatFloat(*v.perSecond*v.unit.Seconds(), 'g', 6, 64)
}

func (v perUnit) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0) || math.IsInf(f, 0) {
		return errors.New("want a number >= 0 (0 disables)")
	}
	*v.perSecond = f / v.unit.Seconds()
	return nil
}

// count is a flag for a burst or a cap: a whole number >= 0, where 0 turns
// its limit off.
type count struct{ n *int }

func (v count) String() string {
	if v.n == nil {
		return ""
	}
	return strconv.Itoa(*v.n)
}

func (v count) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("want a whole number >= 0 (0 disables)")
	}
	*v.n = n
	return nil
}

// quicTokenKeyFile, in --state-dir, holds the key of the QUIC
// address-validation tokens (certs.LoadOrCreateKey). Nodes that share it
// accept each other's tokens.
const quicTokenKeyFile = "quic-token.key"

// ticketKeyFile, in --state-dir, holds the secret the TLS session ticket
// keys are derived from (certs.TicketKeys); nodes that share it resume
// each other's sessions.
const ticketKeyFile = "tls-ticket.key"

func run(ctx context.Context, args []string, stdout, stderr io.Writer, hup <-chan os.Signal) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	// Before anything is created: what would stop the relay stops it
	// here, and --check-config runs exactly this.
	if err := check(o); err != nil {
		return err
	}
	if o.checkConfig {
		printSettings(stdout, o.flags)
		fmt.Fprintln(stdout, "relay: configuration OK")
		return nil
	}
	hopts := &slog.HandlerOptions{Level: o.logLevel}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if o.logFormat == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(h)
	o.cfg.Logger = log

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var background sync.WaitGroup // the HTTP-01 server and SIGHUP, ended with ctx
	defer background.Wait()
	defer cancel()
	var acmeHTTP net.Listener
	if o.acmeHTTP != "" {
		// Bound before certs.Open starts ACME: a challenge that comes
		// first waits in the backlog instead of finding nothing there.
		if acmeHTTP, err = net.Listen("tcp", o.acmeHTTP); err != nil {
			return fmt.Errorf("--acme-http: %w", err)
		}
		defer acmeHTTP.Close()
	}
	o.certs.Logger = log
	p, err := certs.Open(o.certs)
	if err != nil {
		return flagged(err)
	}
	defer p.Close()
	o.cfg.TLS, o.cfg.UDPTLS, o.cfg.CertHashes = p.TLS, p.UDPTLS, p.CertHashes
	if acmeHTTP != nil {
		srv := &http.Server{Handler: p.HTTPHandler, ReadHeaderTimeout: 5 * time.Second}
		background.Go(func() { srv.Serve(acmeHTTP) })
		context.AfterFunc(ctx, func() { srv.Close() })
	}
	// SIGHUP reloads --cert/--key; ACME and development certificates
	// renew by themselves, so there it only says so.
	background.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := p.Reload(); errors.Is(err, certs.ErrNothingToReload) {
					log.Info("SIGHUP: nothing to reload; only --cert/--key are read from files")
				} // a reload logs what it did
			}
		}
	})

	// Address-validation tokens given to devices stay good across
	// restarts: a returning fleet skips the Retry (--retry-above).
	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	key, err := certs.LoadOrCreateKey(filepath.Join(o.stateDir, quicTokenKeyFile))
	if err != nil {
		return err
	}
	o.cfg.QUICTokenKey = (*quic.TokenGeneratorKey)(&key)
	// So are TLS session tickets: a returning device resumes its session
	// and skips the certificate.
	secret, err := certs.LoadOrCreateKey(filepath.Join(o.stateDir, ticketKeyFile))
	if err != nil {
		return err
	}
	tickets := certs.NewTicketKeys(secret)
	tickets.Install(o.cfg.TLS)
	if o.cfg.UDPTLS != nil {
		tickets.Install(o.cfg.UDPTLS)
	}

	r, err := server.New(o.cfg)
	if err != nil {
		return err
	}
	attrs := []any{"listen", r.Addr().String()}
	if a := r.AdminAddr(); a != nil {
		attrs = append(attrs, "admin", a.String())
	}
	if a := r.MQTTAddr(); a != nil {
		attrs = append(attrs, "mqtt", a.String())
	}
	if a := r.MQTTSAddr(); a != nil {
		attrs = append(attrs, "mqtts", a.String())
	}
	if o.cfg.MQTTOnListen {
		attrs = append(attrs, "mqtt_on_listen", true)
	}
	log.Info("relay listening (HTTPS on TCP, QUIC on UDP)", attrs...)
	return r.Run(ctx)
}

// check is what a start checks before it creates or binds anything, and
// all that --check-config does: the certificates and the keys in
// --state-dir are read, never created, and the node's configuration is
// checked as server.New checks it (the listen and admin addresses, the
// limits, the cluster's settings and files). It writes nothing.
func check(o *options) error {
	if err := checkDir(o.stateDir); err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	if err := o.certs.Check(); err != nil {
		return flagged(err)
	}
	if o.acmeHTTP != "" {
		if err := server.CheckAddr(o.acmeHTTP); err != nil {
			return fmt.Errorf("--acme-http %q: %w", o.acmeHTTP, err)
		}
	}
	for _, name := range []string{quicTokenKeyFile, ticketKeyFile} {
		if err := certs.CheckKey(filepath.Join(o.stateDir, name)); err != nil {
			return err
		}
	}
	// The certificates come at start, and what could stop them was
	// checked above; server.Config.Check only needs one.
	cfg := o.cfg
	cfg.TLS = &tls.Config{}
	return flagged(cfg.Check())
}

// flagged names the flag of a setting that cannot work: every
// configuration's Check says which (a *setting.Error), and this is the one
// place that turns it into the flag to fix.
func flagged(err error) error {
	if se, ok := errors.AsType[*setting.Error](err); ok {
		return fmt.Errorf("--%s: %w", se.Name, se.Err)
	}
	return err
}

// checkDir reports whether dir is a directory, or could be made one: the
// nearest part of its path that exists is a directory.
func checkDir(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		switch {
		case err == nil && fi.IsDir():
			return nil
		case err == nil:
			return fmt.Errorf("%s is not a directory", d)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		case filepath.Dir(d) == d:
			return err
		}
	}
}

// printSettings lists every flag's effective value as --name=value, in
// the flags' order. Values are what the relay was given, paths for files;
// the user part of a URL (a NATS password or token) is redacted.
func printSettings(w io.Writer, flags *flag.FlagSet) {
	flags.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "--%s=%s\n", f.Name, shellQuote(redactURLs(f.Value.String())))
	})
}

// redactURLs replaces the user part of every URL in v (nats://user:pass@host,
// nats://token@host, comma-separated) with REDACTED.
func redactURLs(v string) string {
	parts := strings.Split(v, ",")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			continue
		}
		authority := rest
		if end := strings.IndexAny(rest, "/?#"); end >= 0 {
			authority = rest[:end]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			parts[i] = scheme + "://REDACTED" + rest[at:]
		}
	}
	return strings.Join(parts, ",")
}

// shellQuote quotes v for a shell when it needs it, so that a line can be
// pasted back as a flag.
func shellQuote(v string) string {
	if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
