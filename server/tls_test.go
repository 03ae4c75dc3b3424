package server_test

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"

	"github.com/pixelrelay/relay/internal/relaytest"
	"github.com/pixelrelay/relay/wire"
)

// TestTLS12Callers: a webhook caller that speaks only TLS 1.2 is served,
// with a forward-secret AEAD suite; one that offers only CBC suites is
// refused in the handshake. TLS 1.3 callers are unaffected.
func TestTLS12Callers(t *testing.T) {
	e := relaytest.Start(t, nil)
	tok := wire.NewToken()
	e.Dial(t, tok, echo("d"))
	post := func(conf *tls.Config) (*http.Response, error) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
		defer client.CloseIdleConnections()
		return client.Post(e.URL("notify", tok), "application/json", strings.NewReader(`{}`))
	}
	tls12 := e.TLS.Clone()
	tls12.MaxVersion = tls.VersionTLS12
	resp, err := post(tls12)
	if err != nil {
		t.Fatalf("TLS 1.2 caller: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS.Version != tls.VersionTLS12 {
		t.Fatalf("TLS 1.2 caller: %d over %s", resp.StatusCode, tls.VersionName(resp.TLS.Version))
	}
	if s := tls.CipherSuiteName(resp.TLS.CipherSuite); !strings.HasPrefix(s, "TLS_ECDHE_") || strings.Contains(s, "CBC") {
		t.Fatalf("TLS 1.2 suite %s, want ECDHE with an AEAD", s)
	}

	cbc := tls12.Clone()
	cbc.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}
	if resp, err := post(cbc); err == nil {
		resp.Body.Close()
		t.Fatalf("a caller offering only CBC suites was served (%s)", tls.CipherSuiteName(resp.TLS.CipherSuite))
	}
	tls11 := e.TLS.Clone()
	tls11.MinVersion, tls11.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	if resp, err := post(tls11); err == nil {
		resp.Body.Close()
		t.Fatal("a TLS 1.1 caller was served")
	}

	resp, err = post(e.TLS.Clone())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("a modern caller got %s", tls.VersionName(resp.TLS.Version))
	}
}
