package certs_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/server"
)

// A relay in development: no files and no ACME domain, so the
// certificates come from the development CA in the state directory.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "relay-state")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	p, err := certs.Open(certs.Config{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	cfg := server.DefaultConfig()
	cfg.TLS, cfg.UDPTLS, cfg.CertHashes = p.TLS, p.UDPTLS, p.CertHashes
	fmt.Println("devices trust", filepath.Base(p.Dev.CAFile))
	// Output: devices trust ca.pem
}
