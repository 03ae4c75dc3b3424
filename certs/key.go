package certs

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeySize is the size of a secret LoadOrCreateKey keeps.
const KeySize = 32

// LoadOrCreateKey returns the secret kept in the file name (KeySize bytes
// as hex, mode 0600), creating the file with a random one when it does not
// exist. The relay keeps its QUIC address-validation token key this way,
// so that tokens it gave devices stay good across restarts, and nodes that
// share the file accept each other's.
//
// Two processes creating the file at once end up with the same key: the
// file appears whole (a hard link to a written temporary file) or not at
// all, and the one that loses the race reads the winner's.
func LoadOrCreateKey(name string) (key [KeySize]byte, err error) {
	if key, err = readKey(name); !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if _, err := rand.Read(key[:]); err != nil {
		return key, fmt.Errorf("certs: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return key, fmt.Errorf("certs: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(hex.EncodeToString(key[:]) + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return key, fmt.Errorf("certs: write %s: %w", name, err)
	}
	if err := os.Link(tmp.Name(), name); errors.Is(err, fs.ErrExist) {
		return readKey(name)
	} else if err != nil {
		return key, fmt.Errorf("certs: write %s: %w", name, err)
	}
	return key, nil
}

// CheckKey reports what would make LoadOrCreateKey(name) fail on an
// existing file, and creates nothing: a missing file is no error (it would
// be created).
func CheckKey(name string) error {
	if _, err := readKey(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func readKey(name string) (key [KeySize]byte, err error) {
	b, err := os.ReadFile(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return key, err
		}
		return key, fmt.Errorf("certs: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) != hex.EncodedLen(KeySize) {
		err = errors.New("wrong length")
	} else {
		_, err = hex.Decode(key[:], b)
	}
	if err != nil {
		return key, fmt.Errorf("certs: %s: want %d hex digits (a %d-byte key); remove the file to have a new key made", name, 2*KeySize, KeySize)
	}
	return key, nil
}
