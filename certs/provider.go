package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pixelrelay/relay/certs/trust"
	"github.com/pixelrelay/relay/internal/setting"
)

// Config says where the relay's certificates come from, in one of three
// modes: from an ACME CA when ACME.Domains is set; from the operator's
// files when CertFile is; else from the development CA in Dir. Check
// reports what Open would refuse; cmd/relay's --check-config runs it.
type Config struct {
	// Dir is the state directory: the development CA and its server
	// certificate, or (under Dir/acme) ACME's account and certificates.
	// Unused with CertFile.
	Dir string

	// CertFile and KeyFile are the operator's PEM certificate chain (leaf
	// first) and private key. Provider.Reload reads them again for new
	// handshakes, and so, with Watch, does every change of either file.
	CertFile, KeyFile string
	Watch             bool

	// ACME, with Domains set, obtains and renews the certificates from an
	// ACME CA. An empty ACME.Dir is Dir/acme; a nil ACME.Logger is Logger.
	ACME ACMEConfig
	// ACMERoots is a PEM file of the CA that signed the ACME directory's
	// HTTPS certificate, for a private ACME server (step-ca, Pebble); it
	// makes the ACME client, so ACME.HTTPClient must be nil. Empty: the
	// system roots.
	ACMERoots string
	// HTTP01, with ACME, has Open make Provider.HTTPHandler, for the caller
	// to serve on port 80: autocert offers the CA HTTP-01 challenges only
	// once that handler exists. Without it, TLS-ALPN-01 only.
	HTTP01 bool

	// Logger receives where the certificates come from (at Open), reloads,
	// and ACME's issuance, renewals and failures; nil discards.
	Logger *slog.Logger
}

// ErrNothingToReload is Provider.Reload's answer when the certificates do
// not come from files: ACME and development certificates renew by
// themselves.
var ErrNothingToReload = errors.New("certs: nothing to reload; only certificate files are read again")

// How often Provider's ACME upkeep retries a first certificate it could
// not obtain, and checks on the renewals once it has one (ACME.Run).
const (
	acmeRetry = time.Minute
	acmeCheck = time.Hour
)

// Check reports the first setting Open would refuse, as a *setting.Error named as cmd/relay's flag.
// It reads what Open reads (the certificate pair, the ACME roots, the
// development CA if Dir holds one) and creates nothing: a missing
// development CA is no error, since Open creates it.
func (c *Config) Check() error {
	acme := len(c.ACME.Domains) > 0
	switch {
	case c.CertFile != "" && c.KeyFile == "":
		return &setting.Error{Name: "key", Err: errors.New("certs: a certificate file needs its key file")}
	case c.CertFile == "" && c.KeyFile != "":
		return &setting.Error{Name: "cert", Err: errors.New("certs: a key file needs its certificate file")}
	case acme && c.CertFile != "":
		return &setting.Error{Name: "acme-domain", Err: errors.New("certs: ACME and certificate files exclude each other")}
	case !acme && c.ACMERoots != "":
		return &setting.Error{Name: "acme-ca-roots", Err: errors.New("certs: roots of an ACME server, but no ACME domain")}
	case !acme && c.HTTP01:
		return &setting.Error{Name: "acme-http", Err: errors.New("certs: HTTP-01 challenges, but no ACME domain")}
	case acme:
		_, err := c.acmeConfig()
		return err
	case c.CertFile != "":
		if _, err := readPair(c.CertFile, c.KeyFile); err != nil {
			return &setting.Error{Name: "cert", Err: err}
		}
		return nil
	case c.Dir == "":
		return &setting.Error{Name: "state-dir", Err: errors.New("certs: no state directory for the development CA")}
	}
	if err := CheckDev(c.Dir); err != nil {
		return &setting.Error{Name: "state-dir", Err: err}
	}
	return nil
}

// acmeConfig is c.ACME with the defaults Config gives it, checked.
func (c *Config) acmeConfig() (ACMEConfig, error) {
	a := c.ACME
	if a.Dir == "" {
		if c.Dir == "" {
			return a, &setting.Error{Name: "state-dir", Err: errors.New("certs: no state directory for ACME")}
		}
		a.Dir = filepath.Join(c.Dir, "acme")
	}
	if a.Logger == nil {
		a.Logger = c.Logger
	}
	if err := a.Check(); err != nil {
		return a, &setting.Error{Name: "acme-domain", Err: err}
	}
	if c.ACMERoots != "" {
		if a.HTTPClient != nil {
			return a, &setting.Error{Name: "acme-ca-roots", Err: errors.New("certs: ACME.HTTPClient is set too")}
		}
		pool, err := trust.CAPool(c.ACMERoots)
		if err != nil {
			return a, &setting.Error{Name: "acme-ca-roots", Err: err}
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: pool}
		a.HTTPClient = &http.Client{Transport: t}
	}
	return a, nil
}

// Provider serves the relay's certificates from the source its Config
// names, and keeps them current until Close: ACME renewals, the operator's
// files reloaded, the short-lived development certificate re-issued.
// Every handshake gets the current certificate; sessions and connections
// already up keep the one they were made with.
//
// The exported fields are static after Open; they go into server.Config
// as they are.
type Provider struct {
	// TLS serves the relay's certificate: TCP, and UDP unless UDPTLS is
	// set. NextProtos is left for the server to set (with ACME it holds
	// acme-tls/1, for TLS-ALPN-01 challenges on TCP).
	TLS *tls.Config
	// UDPTLS, in development, serves the UDP side a short-lived certificate
	// from the same CA (ShortLived), which browsers accept by its hash;
	// nil otherwise.
	UDPTLS *tls.Config
	// CertHashes, in development, returns the SHA-256 of UDPTLS's current
	// certificate, for WebTransport's serverCertificateHashes; nil
	// otherwise.
	CertHashes func() [][sha256.Size]byte
	// HTTPHandler, with ACME and Config.HTTP01, answers HTTP-01 challenges
	// and sends other GET and HEAD requests to HTTPS; nil otherwise.
	HTTPHandler http.Handler
	// Dev, in development, is the CA devices must trust (CAFile,
	// CAFingerprint) and whether Open created it; nil otherwise.
	Dev *Dev

	reload func() error       // static
	cancel context.CancelFunc // ends the upkeep goroutines
	wg     sync.WaitGroup     // the upkeep goroutines
}

// Open checks cfg (Check), then loads or creates the certificates and
// starts their upkeep: with ACME the first certificate is obtained in the
// background (retried every minute until it is), with Watch the files are
// watched. It logs, once, where the certificates come from: in development
// the CA's path and fingerprint, which devices are to trust.
func Open(cfg Config) (*Provider, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Provider{cancel: cancel, reload: func() error { return ErrNothingToReload }}
	var err error
	switch {
	case len(cfg.ACME.Domains) > 0:
		err = p.openACME(ctx, &cfg, log)
	case cfg.CertFile != "":
		err = p.openFiles(ctx, &cfg, log)
	default:
		err = p.openDev(cfg.Dir, log)
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Provider) openACME(ctx context.Context, cfg *Config, log *slog.Logger) error {
	ac, err := cfg.acmeConfig()
	if err != nil {
		return err
	}
	a, err := NewACME(ac)
	if err != nil {
		return err
	}
	p.TLS = a.TLSConfig()
	if cfg.HTTP01 {
		p.HTTPHandler = a.HTTPHandler() // before Run, so that HTTP-01 is offered
	}
	p.wg.Go(func() { a.Run(ctx, acmeRetry, acmeCheck) })
	log.Info("certificates from ACME", "domains", strings.Join(ac.Domains, ","), "ca", a.m.Client.DirectoryURL)
	return nil
}

func (p *Provider) openFiles(ctx context.Context, cfg *Config, log *slog.Logger) error {
	r, err := NewReloader(cfg.CertFile, cfg.KeyFile, log)
	if err != nil {
		return &setting.Error{Name: "cert", Err: err}
	}
	p.TLS, p.reload = r.TLSConfig(), r.Reload
	if cfg.Watch {
		p.wg.Go(func() {
			if err := r.Watch(ctx); err != nil {
				log.Warn("certificate files not watched; SIGHUP reloads them", "err", err)
			}
		})
	}
	leaf := r.cur.Load().Leaf
	log.Info("certificate from files", "cert", cfg.CertFile, "subject", leaf.Subject.CommonName,
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "watch", cfg.Watch)
	return nil
}

func (p *Provider) openDev(dir string, log *slog.Logger) error {
	dev, err := LoadOrCreateDev(dir)
	if err != nil {
		return &setting.Error{Name: "state-dir", Err: err}
	}
	// Browsers take an untrusted WebTransport certificate only by its
	// hash, and only if it lives at most 14 days: the UDP side gets a
	// short-lived one from the same CA, which the device page learns.
	sl, err := dev.ShortLived()
	if err != nil {
		return &setting.Error{Name: "state-dir", Err: err}
	}
	p.TLS, p.UDPTLS, p.CertHashes, p.Dev = dev.TLS, sl.TLSConfig(), sl.Hashes, dev
	log.Info("using development certificates; devices must trust the CA", "ca", dev.CAFile, "sha256", dev.CAFingerprint, "created", dev.Created)
	return nil
}

// Reload reads the operator's certificate files again for new handshakes
// (the relay calls it on SIGHUP). A pair that does not load is refused,
// with a log line and this error, and the one in use stays. Without files
// it returns ErrNothingToReload.
func (p *Provider) Reload() error { return p.reload() }

// Close stops the upkeep (ACME, the file watch) and waits for it: an
// ACME request under way is waited for, as autocert bounds it. The
// certificates already loaded go on serving.
func (p *Provider) Close() {
	p.cancel()
	p.wg.Wait()
}
