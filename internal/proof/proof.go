// Package proof implements the contractor side of proof of possession: a
// DPoP key pair (RFC 9449), its RFC 7638 thumbprint, the DPoP proof JWT
// sent with each request, and the SHA-256 certificate thumbprint of RFC
// 8705 for mTLS-bound tokens. It verifies nothing: checking proofs is the
// gateway's job.
//
// Key file format: one PEM block "PRIVATE KEY" holding a PKCS#8 key,
// either ECDSA on P-256 (used with ES256) or Ed25519 (used with EdDSA),
// and nothing else. It is what "openssl genpkey" writes and reads.
//
// Proof format (a compact JWS):
//
//	header  {"alg": "ES256"|"EdDSA", "typ": "dpop+jwt", "jwk": PUBLIC KEY}
//	claims  {"jti": 128 random bits, base32,
//	         "htm": request method,
//	         "htu": target URI without query and fragment (see HTU),
//	         "iat": issue time, seconds since the epoch,
//	         "ath": base64url(SHA-256(access token)), no padding,
//	         "nonce": the server's DPoP-Nonce, only when it asked for one}
package proof

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Algorithms a key can sign with.
const (
	ES256 = "ES256" // ECDSA P-256 with SHA-256
	EdDSA = "EdDSA" // Ed25519
)

// pemType is the PEM block type of a key file.
const pemType = "PRIVATE KEY"

// ErrKeyFormat is returned by ParseKey for anything but one PKCS#8 P-256
// or Ed25519 private key in PEM.
var ErrKeyFormat = errors.New("not a PEM PKCS#8 P-256 or Ed25519 private key")

// Key is a DPoP private key and the algorithm it signs with.
type Key struct {
	priv crypto.Signer
	alg  string
}

// NewKey generates a key for alg, ES256 or EdDSA.
func NewKey(alg string) (*Key, error) {
	switch alg {
	case ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return &Key{priv: k, alg: ES256}, nil
	case EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return &Key{priv: k, alg: EdDSA}, nil
	}
	return nil, fmt.Errorf("unknown algorithm %q: want %s or %s", alg, ES256, EdDSA)
}

// ParseKey reads a key file: exactly one PEM "PRIVATE KEY" block (PKCS#8)
// holding a P-256 or Ed25519 key, with nothing but white space around it.
func ParseKey(b []byte) (*Key, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != pemType || len(block.Headers) != 0 || strings.TrimSpace(string(rest)) != "" {
		return nil, ErrKeyFormat
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, ErrKeyFormat
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, ErrKeyFormat
		}
		return &Key{priv: k, alg: ES256}, nil
	case ed25519.PrivateKey:
		return &Key{priv: k, alg: EdDSA}, nil
	}
	return nil, ErrKeyFormat
}

// MarshalPEM returns the key file form of k.
func (k *Key) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// Alg returns the algorithm k signs with, ES256 or EdDSA.
func (k *Key) Alg() string { return k.alg }

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of k's public key,
// base64url without padding: the jkt an admin binds a token to.
func (k *Key) Thumbprint() string {
	pub := jose.JSONWebKey{Key: k.priv.Public()}
	sum, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		// Only P-256 and Ed25519 public keys are ever here.
		panic("proof: thumbprint: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// Request is what one proof is bound to.
type Request struct {
	Method string   // the HTTP method, as sent
	URL    *url.URL // the target; its query and fragment are left out
	Token  string   // the access token sent in "Authorization: DPoP"
	Nonce  string   // the server's DPoP-Nonce, or empty
	Time   time.Time
}

// claims are the proof's JWT claims; see the package doc.
type claims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath"`
	Nonce string `json:"nonce,omitempty"`
}

// Sign returns a new DPoP proof for r: a compact JWS with a fresh jti.
func (k *Key) Sign(r Request) (string, error) {
	c := claims{
		JTI:   rand.Text(),
		HTM:   r.Method,
		HTU:   HTU(r.URL),
		IAT:   r.Time.Unix(),
		ATH:   ATH(r.Token),
		Nonce: r.Nonce,
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: k.priv}, opts)
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop proof: %w", err)
	}
	return jws.CompactSerialize()
}

// HTU returns the htu claim for u: scheme and host in lower case, the
// default port (80 for http, 443 for https) left out, the path as it is
// sent ("/" if empty), no query, no fragment. That is the RFC 3986
// normalised form RFC 9449 section 4.3 compares.
func HTU(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" && !(scheme == "http" && p == "80" || scheme == "https" && p == "443") {
		host += ":" + p
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path
}

// ATH returns the ath claim for token: base64url(SHA-256(token)), no
// padding.
func ATH(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CertThumbprint returns the RFC 8705 x5t#S256 of a certificate: the
// SHA-256 of its DER, base64url without padding.
func CertThumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
