package certs

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Reloader serves an operator's certificate and key files, and loads them
// again for new handshakes on Reload (the relay calls it on SIGHUP) and,
// with Watch, whenever either file changes on disk. A pair that does not
// load is refused with a log line and the one in use stays. Sessions and
// connections already up keep the certificate they were made with.
type Reloader struct {
	certFile, keyFile string       // static
	log               *slog.Logger // static

	mu  sync.Mutex // serializes reloads
	cur atomic.Pointer[tls.Certificate]
}

// NewReloader loads the pair; the first load must succeed.
func NewReloader(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log}
	cert, err := readPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cur.Store(&cert)
	return r, nil
}

// GetCertificate is tls.Config.GetCertificate: the pair loaded last.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// TLSConfig is the relay's TLS configuration serving the files.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: r.GetCertificate}
}

// Reload loads the files again. If they do not make a usable pair, the
// error says why and the pair in use stays.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cert, err := readPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Error("certificate reload refused; serving the previous one", "err", err)
		return err
	}
	if old := r.cur.Load(); old.Leaf != nil && old.Leaf.Equal(cert.Leaf) {
		return nil
	}
	r.cur.Store(&cert)
	r.log.Info("certificate reloaded for new handshakes", "cert", r.certFile, "subject", cert.Leaf.Subject.CommonName,
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// reloadSettle is how long Watch waits after a change for the files to
// settle: renewals write the certificate and the key one after the other.
const reloadSettle = 200 * time.Millisecond

// Watch reloads the pair whenever the certificate or the key file is
// written, created or replaced (editors and ACME clients rename a new file
// over the old, or swap a symlink), until ctx ends. It watches the files'
// directories, since a replaced file is a new file.
func (r *Reloader) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("certs: watch: %w", err)
	}
	defer w.Close()
	watched := map[string]bool{}
	for _, f := range []string{r.certFile, r.keyFile} {
		dir := filepath.Dir(f)
		if !watched[dir] {
			if err := w.Add(dir); err != nil {
				return fmt.Errorf("certs: watch %s: %w", dir, err)
			}
			watched[dir] = true
		}
	}
	ours := func(name string) bool {
		name = filepath.Clean(name)
		return name == filepath.Clean(r.certFile) || name == filepath.Clean(r.keyFile) ||
			filepath.Base(name) == "..data" // Kubernetes secret volumes swap this symlink
	}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ours(ev.Name) && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Chmod) != 0 {
				settle.Reset(reloadSettle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.log.Warn("certificate watch", "err", err)
		case <-settle.C:
			r.Reload()
		}
	}
}
