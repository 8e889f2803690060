package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"

	"latchkey/internal/access"
	"latchkey/internal/store"
)

// mtlsChallenge is the WWW-Authenticate header of a refused
// certificate-bound token. RFC 8705 keeps the Bearer scheme for such
// tokens (section 3), so the challenge is a Bearer one.
const mtlsChallenge = `Bearer realm="latchkey", error="invalid_token", error_description="certificate-bound token"`

// Thumbprint returns the x5t#S256 confirmation of a certificate (RFC 8705
// section 3.1): the SHA-256 of its DER encoding, base64url without
// padding. It is what "token issue --bind mtls --x5t" takes, and what
//
//	openssl x509 -in c.pem -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d '='
//
// prints.
func Thumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// checkMTLS reports whether r arrived over a TLS connection whose client
// presented the certificate tok is bound to (tok.CnfX5T, RFC 8705
// section 3). Only the connection's own handshake counts: the gateway
// never believes a client-certificate header set by a proxy, so behind a
// TLS-terminating proxy a certificate-bound token is always refused. The
// TLS handshake (CertificateVerify) has proved that the client holds the
// certificate's private key; the certificate itself need not chain to any
// CA (self-signed certificate binding, RFC 8705 section 2.2). The error
// says, for the client, what was missing; it never holds a secret.
func checkMTLS(r *http.Request, tok store.Token) error {
	switch {
	case r.TLS == nil:
		return errors.New("token " + tok.ID + " is bound to a client certificate: it is accepted only over TLS with that certificate")
	case len(r.TLS.PeerCertificates) == 0:
		return errors.New("token " + tok.ID + " is bound to a client certificate: none was presented")
	}
	got := Thumbprint(r.TLS.PeerCertificates[0].Raw)
	if subtle.ConstantTimeCompare([]byte(got), []byte(tok.CnfX5T)) != 1 {
		return errors.New("token " + tok.ID + " is bound to another client certificate than the one presented")
	}
	return nil
}

// denyMTLS refuses a certificate-bound token that checkMTLS refused: 401
// proof_invalid, audited, and counted against the source's failure
// budget like any other authentication failure.
func (h *Handler) denyMTLS(w *recorder, r *http.Request, src netip.Addr, rec *access.GatewayRequest, err error) {
	h.failures.allow(src, h.cfg.Now())
	w.Header().Set("WWW-Authenticate", mtlsChallenge)
	h.deny(w, r, rec, http.StatusUnauthorized, ReasonProofInvalid, err.Error())
}
