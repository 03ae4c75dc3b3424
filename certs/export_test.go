package certs

import (
	"crypto/tls"
	"path/filepath"
	"time"
)

// LoadOrCreateDevAt is LoadOrCreateDev with the clock set to now.
var LoadOrCreateDevAt = loadOrCreateDev

// WriteServerAt replaces the server pair in dir with one issued by the CA in
// dir as if the time were now.
func WriteServerAt(dir string, now time.Time) (tls.Certificate, error) {
	ca, err := readPair(filepath.Join(dir, caFile), filepath.Join(dir, caKeyFile))
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := issueServer(ca, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	return cert, save(cert, filepath.Join(dir, serverFile), filepath.Join(dir, serverKeyFile))
}

// ShortLivedAt is Dev.ShortLived with the clock read from now.
func ShortLivedAt(d *Dev, now func() time.Time) (*ShortLived, error) {
	return d.shortLived(now)
}
