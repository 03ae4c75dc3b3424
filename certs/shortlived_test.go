package certs_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pixelrelay/relay/certs"
	"github.com/pixelrelay/relay/certs/trust"
)

// clock is a settable clock, safe to read from many goroutines.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := new(clock)
	c.set(t)
	return c
}

func (c *clock) now() time.Time  { return time.Unix(0, c.ns.Load()) }
func (c *clock) set(t time.Time) { c.ns.Store(t.UnixNano()) }

func mustShortLived(t *testing.T, dev *certs.Dev, c *clock) *certs.ShortLived {
	t.Helper()
	s, err := certs.ShortLivedAt(dev, c.now)
	if err != nil {
		t.Fatalf("ShortLived: %v", err)
	}
	return s
}

func mustGet(t testing.TB, s *certs.ShortLived) *tls.Certificate {
	t.Helper()
	c, err := s.GetCertificate(nil)
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	if c == nil || c.Leaf == nil || len(c.Certificate) == 0 {
		t.Fatalf("GetCertificate returned %+v", c)
	}
	return c
}

// checkHashes checks that Hashes holds exactly the hash of c's leaf.
func checkHashes(t *testing.T, s *certs.ShortLived, c *tls.Certificate) {
	t.Helper()
	want := sha256.Sum256(c.Certificate[0])
	if got := s.Hashes(); len(got) != 1 || got[0] != want {
		t.Errorf("Hashes = %x, want [%x]", got, want)
	}
}

func TestShortLivedCertificate(t *testing.T) {
	dir := t.TempDir()
	dev := mustDev(t, dir)
	now := time.Now()
	s := mustShortLived(t, dev, newClock(now))
	c := mustGet(t, s)

	if n := len(c.Certificate); n != 2 {
		t.Fatalf("chain has %d certificates, want 2 (leaf, CA)", n)
	}
	ca := readCert(t, filepath.Join(dir, "ca.pem"))
	if !bytes.Equal(c.Certificate[1], ca.Raw) {
		t.Error("chain[1] is not ca.pem")
	}
	l, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if !l.Equal(c.Leaf) {
		t.Error("Leaf is not chain[0]")
	}
	if l.Version != 3 {
		t.Errorf("Version = %d, want 3", l.Version)
	}
	if k, ok := l.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", l.PublicKey)
	}
	if k, ok := c.PrivateKey.(*ecdsa.PrivateKey); !ok || !k.PublicKey.Equal(l.PublicKey) {
		t.Errorf("PrivateKey is %T and does not match the leaf", c.PrivateKey)
	}
	if l.KeyUsage != x509.KeyUsageDigitalSignature || len(l.ExtKeyUsage) != 1 ||
		l.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || l.IsCA {
		t.Errorf("KeyUsage %b ExtKeyUsage %v IsCA %v", l.KeyUsage, l.ExtKeyUsage, l.IsCA)
	}

	if v := l.NotAfter.Sub(l.NotBefore); v != certs.ShortLivedValidity || v > 14*24*time.Hour {
		t.Errorf("validity %v, want %v (at most 14 days)", v, certs.ShortLivedValidity)
	}
	if want := now.Add(-time.Hour); l.NotBefore.After(want) || l.NotBefore.Before(want.Add(-time.Second)) {
		t.Errorf("NotBefore = %v, want %v to the second", l.NotBefore, want)
	}

	pool, err := trust.CAPool(dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := l.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := l.Verify(x509.VerifyOptions{DNSName: "relay.example", Roots: pool}); err == nil {
		t.Error("verified for relay.example")
	}
	checkHashes(t, s, c)

	// Nothing is written to the state directory.
	if entries, _ := filepath.Glob(filepath.Join(dir, "*")); len(entries) != 4 {
		t.Errorf("state dir holds %v, want the 4 dev files only", entries)
	}

	cfg := s.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS13 || cfg.NextProtos != nil || cfg.Certificates != nil || cfg.GetCertificate == nil {
		t.Errorf("TLSConfig: MinVersion %#x NextProtos %q %d Certificates, GetCertificate set %v",
			cfg.MinVersion, cfg.NextProtos, len(cfg.Certificates), cfg.GetCertificate != nil)
	}
}

func TestShortLivedRenewal(t *testing.T) {
	dev := mustDev(t, t.TempDir())
	pool, err := trust.CAPool(dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock(time.Now())
	s := mustShortLived(t, dev, clk)
	first := mustGet(t, s)
	due := first.Leaf.NotAfter.Add(-certs.ShortLivedRenewBefore)

	// Up to and including the moment exactly ShortLivedRenewBefore is left.
	for _, at := range []time.Time{clk.now().Add(24 * time.Hour), due.Add(-time.Second), due} {
		clk.set(at)
		if c := mustGet(t, s); c != first {
			t.Fatalf("renewed at %v, %v before NotAfter", at, first.Leaf.NotAfter.Sub(at))
		}
		checkHashes(t, s, first)
	}

	// Hashes alone renews, so the hash a page gets is the one the next
	// handshake presents.
	at := due.Add(time.Nanosecond)
	clk.set(at)
	hashes := s.Hashes()
	second := mustGet(t, s)
	if second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("not renewed with less than ShortLivedRenewBefore left")
	}
	if len(hashes) != 1 || hashes[0] != sha256.Sum256(second.Certificate[0]) || hashes[0] == sha256.Sum256(first.Certificate[0]) {
		t.Errorf("Hashes after renewal = %x, want the new certificate's only", hashes)
	}
	checkHashes(t, s, second)
	if want := at.Add(-time.Hour).Truncate(time.Second); !second.Leaf.NotBefore.Equal(want) {
		t.Errorf("renewed NotBefore = %v, want %v", second.Leaf.NotBefore, want)
	}
	if v := second.Leaf.NotAfter.Sub(second.Leaf.NotBefore); v != certs.ShortLivedValidity {
		t.Errorf("renewed validity %v", v)
	}
	if _, err := second.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool, CurrentTime: at}); err != nil {
		t.Errorf("renewed certificate does not verify: %v", err)
	}
	if c := mustGet(t, s); c != second {
		t.Error("renewed again right after renewing")
	}

	// And again, one cycle later.
	clk.set(second.Leaf.NotAfter.Add(-certs.ShortLivedRenewBefore + time.Second))
	if third := mustGet(t, s); third.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) == 0 {
		t.Error("second renewal did not happen")
	}
}

// TestShortLivedConcurrent has readers on the hot path when the clock
// passes the renewal time: exactly one renewal happens and every reader
// moves from the old certificate to the same new one. Run it with -race.
func TestShortLivedConcurrent(t *testing.T) {
	dev := mustDev(t, t.TempDir())
	clk := newClock(time.Now())
	s := mustShortLived(t, dev, clk)
	old := mustGet(t, s)
	oldHash := sha256.Sum256(old.Certificate[0])

	const readers = 16
	var (
		started sync.WaitGroup
		done    sync.WaitGroup
		mu      sync.Mutex
		seen    = map[*tls.Certificate]bool{}
	)
	started.Add(readers)
	done.Add(readers)
	for range readers {
		go func() {
			defer done.Done()
			mine := map[*tls.Certificate]bool{}
			first := true
			// Bounded: the clock is moved once every reader has started.
			for range 1_000_000 {
				h := s.Hashes()
				c, err := s.GetCertificate(nil)
				if err != nil {
					t.Error(err)
					break
				}
				if len(h) != 1 {
					t.Errorf("Hashes = %x", h)
					break
				}
				if h[0] != oldHash && c == old {
					t.Error("new hash handed out, then the old certificate served")
					break
				}
				mine[c] = true
				if first {
					first = false
					started.Done()
				}
				if c != old {
					break
				}
			}
			mu.Lock()
			for c := range mine {
				seen[c] = true
			}
			mu.Unlock()
		}()
	}
	started.Wait()
	clk.set(old.Leaf.NotAfter.Add(-certs.ShortLivedRenewBefore + time.Second))
	done.Wait()

	if len(seen) != 2 || !seen[old] {
		t.Fatalf("readers saw %d certificates, want the old one and a single new one", len(seen))
	}
	for c := range seen {
		if c != old {
			checkHashes(t, s, c)
			if c.Leaf.SerialNumber.Cmp(old.Leaf.SerialNumber) == 0 {
				t.Error("new certificate has the old serial")
			}
		}
	}
}

func TestShortLivedCAExpiry(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	// A CA created so long ago that it expires in 5 days: certificates end
	// with it rather than being renewed over and over.
	dev, err := certs.LoadOrCreateDevAt(dir, now.AddDate(-10, 0, 5))
	if err != nil {
		t.Fatal(err)
	}
	caEnd := readCert(t, dev.CAFile).NotAfter
	clk := newClock(now)
	s := mustShortLived(t, dev, clk)
	c := mustGet(t, s)
	if !c.Leaf.NotAfter.Equal(caEnd) {
		t.Errorf("NotAfter = %v, want the CA's %v", c.Leaf.NotAfter, caEnd)
	}

	clk.set(caEnd)
	if got := mustGet(t, s); got != c {
		t.Error("renewed a certificate cut short by the CA's expiry")
	}

	clk.set(caEnd.Add(time.Second))
	if got, err := s.GetCertificate(nil); !errors.Is(err, certs.ErrBadCA) || got != nil {
		t.Errorf("after the CA expired: %v, %v; want ErrBadCA", got, err)
	}
	if h := s.Hashes(); h != nil {
		t.Errorf("Hashes after the CA expired = %x, want nil", h)
	}

	if _, err := certs.ShortLivedAt(dev, clk.now); !errors.Is(err, certs.ErrBadCA) {
		t.Errorf("ShortLived with an expired CA: %v, want ErrBadCA", err)
	}
	if _, err := new(certs.Dev).ShortLived(); !errors.Is(err, certs.ErrBadCA) {
		t.Errorf("ShortLived on a zero Dev: %v, want ErrBadCA", err)
	}
}

func TestShortLivedHandshake(t *testing.T) {
	dev := mustDev(t, t.TempDir())
	s, err := dev.ShortLived()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := trust.CAPool(dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	for _, tt := range []struct{ addr, serverName string }{
		{net.JoinHostPort("localhost", port), "localhost"},
		{net.JoinHostPort("127.0.0.1", port), ""}, // verified against the IP SAN
	} {
		t.Run(tt.addr, func(t *testing.T) {
			served := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					served <- err
					return
				}
				defer c.Close()
				_, err = c.Write([]byte("ok"))
				served <- err
			}()

			// The listener is IPv4: make "localhost" resolve there.
			d := &tls.Dialer{
				NetDialer: &net.Dialer{Timeout: 10 * time.Second},
				Config:    &tls.Config{RootCAs: pool, ServerName: tt.serverName},
			}
			conn, err := d.Dial("tcp4", tt.addr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			c := conn.(*tls.Conn)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if got, err := io.ReadAll(io.LimitReader(c, 2)); err != nil || string(got) != "ok" {
				t.Fatalf("read %q, %v", got, err)
			}
			if err := <-served; err != nil {
				t.Fatalf("server: %v", err)
			}

			st := c.ConnectionState()
			if st.Version != tls.VersionTLS13 {
				t.Errorf("version %#x, want TLS 1.3", st.Version)
			}
			if n := len(st.PeerCertificates); n != 2 {
				t.Errorf("server sent %d certificates, want leaf and CA", n)
			}
			if len(st.VerifiedChains) == 0 {
				t.Fatal("no verified chain")
			}
			hashes := s.Hashes()
			if len(hashes) != 1 || hashes[0] != sha256.Sum256(st.PeerCertificates[0].Raw) {
				t.Errorf("Hashes = %x, not the served leaf's", hashes)
			}
		})
	}
}

func BenchmarkShortLivedGetCertificate(b *testing.B) {
	dev, err := certs.LoadOrCreateDev(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	s, err := dev.ShortLived()
	if err != nil {
		b.Fatal(err)
	}
	// Baseline: reading the clock, which the hot path does once.
	b.Run("clock", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var last time.Time
			for pb.Next() {
				last = time.Now()
			}
			sinkTime.Store(last.UnixNano())
		})
	})
	b.Run("GetCertificate", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var last *tls.Certificate
			for pb.Next() {
				last, _ = s.GetCertificate(nil)
			}
			sink.Store(last)
		})
	})
}

// Sinks keep results alive so the compiler cannot drop the calls.
var (
	sink     atomic.Pointer[tls.Certificate]
	sinkTime atomic.Int64
)
