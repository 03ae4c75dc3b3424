// Package certs is where the relay's certificates come from. Open takes a
// Config and returns a Provider, whose TLS configurations go into
// server.Config as they are, in one of three modes:
//
//   - ACME (Config.ACME): certificates from an ACME CA, Let's Encrypt by
//     default, obtained at start and renewed by
//     golang.org/x/crypto/acme/autocert (see ACME), which answers
//     TLS-ALPN-01 challenges on the relay's TCP port and, with
//     Config.HTTP01, HTTP-01 challenges through Provider.HTTPHandler. The
//     account key and the certificates live in Dir/acme.
//   - The operator's files (Config.CertFile and KeyFile): read at Open, and
//     again for new handshakes on Provider.Reload (the relay calls it on
//     SIGHUP) and, with Config.Watch, whenever either file changes
//     (Reloader, over fsnotify). A pair that does not load is refused and
//     the one in use stays.
//   - The development CA, in Dir: a local CA and a server certificate it
//     signs (LoadOrCreateDev) serve TCP; UDP gets a short-lived certificate
//     from the same CA (ShortLived: ECDSA, valid 10 days, renewed in
//     memory), because browsers accept an untrusted WebTransport server
//     only by the hash of a certificate valid at most 14 days, which
//     Provider.CertHashes returns. Open logs the CA's path and fingerprint,
//     which devices are to trust.
//
// Whatever the mode, a renewal or reload serves new handshakes only:
// sessions already up keep the certificate they were made with. Config.Check
// reports, reading but creating nothing, what Open would refuse; the relay's
// --check-config runs it.
//
// The development CA is created once and never replaced behind the
// operator's back, because devices were told to trust it: an unusable CA is
// an error. The server certificate is cheap and is re-issued whenever it is
// missing, broken, near expiry or from another CA.
//
// Devices trust a relay with package trust (CAPool, Fingerprint), which
// imports only the standard library and none of this package. The relay's
// other secrets in its state directory are kept here too: LoadOrCreateKey
// (the QUIC address-validation token key, the secret behind TicketKeys,
// which encrypt TLS session tickets).
package certs
