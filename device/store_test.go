package device_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pixelrelay/relay/device"
	"github.com/pixelrelay/relay/wire"
)

func wantMode0600(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Fatalf("token file mode %v; want 0600", m)
	}
}

func TestFileStoreFirstLoadCreatesToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	tok, err := device.FileStore{Path: path}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.CheckToken([]byte(tok)); err != nil {
		t.Fatalf("created token %q: %v", tok, err)
	}
	wantMode0600(t, path)

	// A second Load, through another FileStore value as after a restart,
	// returns the same token.
	again, err := device.FileStore{Path: path}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if again != tok {
		t.Fatalf("second Load = %q; want the first token %q", again, tok)
	}
}

func TestFileStoreSaveReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	store := device.FileStore{Path: filepath.Join(dir, "token")}
	old, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	// A reader that opened the file before Save must still see the whole
	// old token: Save renames a new file into place rather than rewriting
	// this one.
	f, err := os.Open(store.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	next := wire.NewToken()
	if err := store.Save(next); err != nil {
		t.Fatal(err)
	}
	if got, err := store.Load(); err != nil || got != next {
		t.Fatalf("Load after Save = %q, %v; want %q", got, err, next)
	}
	wantMode0600(t, store.Path)
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) != old {
		t.Fatalf("file opened before Save now reads %q; want the old token %q (replaced in place, not atomically)", b, old)
	}
	// No temporary file is left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "token" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %q; want only the token file", names)
	}
}

func TestFileStoreRejectsBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          error
	}{
		{"garbage", "this is not a token!\n", wire.ErrTokenMalformed},
		{"binary", "\x00\x01\x02\xff" + strings.Repeat("A", 30), wire.ErrTokenMalformed},
		{"short", "abcdefghijk\n", wire.ErrTokenMalformed},
		{"weak", strings.Repeat("ab", 16) + "\n", wire.ErrTokenWeak},
		{"empty", "", wire.ErrTokenMissing},
		{"two tokens", wire.NewToken() + "\n" + wire.NewToken() + "\n", wire.ErrTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			tok, err := device.FileStore{Path: path}.Load()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Load = %q, %v; want an error wrapping %v", tok, err, tc.want)
			}
			// The bad file is reported, never silently replaced.
			if b, _ := os.ReadFile(path); string(b) != tc.content {
				t.Fatalf("Load rewrote the bad file to %q", b)
			}
		})
	}
}

func TestFileStoreToleratesWhitespace(t *testing.T) {
	tok := wire.NewToken()
	for _, content := range []string{
		tok,
		tok + "\n",
		tok + "\r\n",
		tok + " \t\n\n",
		"\n  " + tok + "  \n",
	} {
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := device.FileStore{Path: path}.Load()
		if err != nil || got != tok {
			t.Errorf("Load of %q = %q, %v; want %q", content, got, err, tok)
		}
	}
}

func TestFileStoreMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "token")
	if tok, err := (device.FileStore{Path: path}).Load(); err == nil {
		t.Fatalf("Load in a missing directory = %q, nil; want an error", tok)
	}
}
