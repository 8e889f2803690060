// Package dpop verifies DPoP proofs (RFC 9449): the signed JWTs a client
// sends in the DPoP request header to show that it holds the private key a
// token is bound to. A Verifier runs the checks of RFC 9449 section 4.3,
// with the access token checks of section 7 (ath, jkt), a bounded replay
// cache of jti values (section 11.1) and optional server nonces (section
// 8).
//
// A proof is a JWS in compact serialization, at most MaxProofSize bytes:
//
//	header  {"typ":"dpop+jwt","alg":ALG,"jwk":PUBLIC-JWK}
//	payload {"jti":ID,"htm":METHOD,"htu":URI,"iat":SECONDS[,"ath":HASH][,"nonce":N]}
//
// where ALG is one of Algorithms, PUBLIC-JWK carries no private member,
// ID is at most MaxJTI bytes, URI is absolute without query or fragment,
// SECONDS is an integer NumericDate and HASH is the base64url (no padding)
// SHA-256 of the access token's text.
package dpop

import (
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Limits of a proof.
const (
	MaxProofSize = 8 << 10 // bytes of the compact JWS
	MaxJTI       = 256     // bytes of the jti claim
	// DefaultWindow is how far iat may be from the verifier's clock.
	DefaultWindow = 60 * time.Second
	// DefaultMaxReplay is the default hard cap of jti values remembered.
	DefaultMaxReplay = 1 << 20
)

// Algorithms are the JWS algorithms a proof may use, as the
// WWW-Authenticate algs parameter lists them. Never none, never a MAC.
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// AlgList is Algorithms space-separated, for WWW-Authenticate.
const AlgList = "ES256 EdDSA"

// Error codes of RFC 9449 section 7.1 and 8, for WWW-Authenticate.
const (
	CodeInvalidProof = "invalid_dpop_proof"
	CodeUseNonce     = "use_dpop_nonce"
)

// Rejections. Every error Verify returns wraps exactly one of them.
var (
	ErrCount      = errors.New("not exactly one DPoP header")
	ErrMalformed  = errors.New("malformed proof")
	ErrType       = errors.New("proof typ is not dpop+jwt")
	ErrAlgorithm  = errors.New("proof algorithm not allowed")
	ErrKey        = errors.New("proof jwk is not a public key")
	ErrSignature  = errors.New("proof signature does not verify")
	ErrClaims     = errors.New("proof claims missing or invalid")
	ErrMethod     = errors.New("proof htm does not match the request method")
	ErrURI        = errors.New("proof htu does not match the request URI")
	ErrIssuedAt   = errors.New("proof iat outside the accepted window")
	ErrTokenHash  = errors.New("proof ath does not match the access token")
	ErrBinding    = errors.New("proof key is not the key the token is bound to")
	ErrReplay     = errors.New("proof jti already used")
	ErrReplayFull = errors.New("replay cache full: proof refused")
	ErrNonce      = errors.New("proof nonce missing or stale")
)

// Config configures a Verifier. The zero value is usable.
type Config struct {
	// Window is how far a proof's iat may be before or after Now.
	// Default DefaultWindow.
	Window time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// MaxReplay is the hard cap of jti values held for replay detection;
	// when it is reached, new proofs are refused (ErrReplayFull) until
	// old ones expire, never accepted unchecked. Default DefaultMaxReplay.
	MaxReplay int
	// Nonces, if set, makes the nonce claim required and checked (RFC
	// 9449 section 8). nil: nonces are neither issued nor required.
	Nonces *Nonces
}

// Verifier checks proofs. It is safe for concurrent use.
type Verifier struct {
	cfg     Config
	seen    *replay
	refused atomic.Uint64 // proofs refused because the replay cache was full
}

// New returns a Verifier for cfg.
func New(cfg Config) (*Verifier, error) {
	if cfg.Window < 0 || cfg.MaxReplay < 0 {
		return nil, errors.New("dpop: negative window or replay cap")
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxReplay == 0 {
		cfg.MaxReplay = DefaultMaxReplay
	}
	return &Verifier{cfg: cfg, seen: newReplay(cfg.MaxReplay)}, nil
}

// Request is what a proof is checked against.
type Request struct {
	// Proofs are the values of the request's DPoP header fields.
	Proofs []string
	// Method is the request method; URI the request's absolute URI
	// without query and fragment (the gateway's public base URL and the
	// path as sent).
	Method, URI string
	// Token is the access token's text (for ath); JKT the RFC 7638
	// thumbprint the token is bound to (cnf jkt). Both are required.
	Token, JKT string
}

// Proof is a verified proof.
type Proof struct {
	JTI string
	IAT time.Time
	JKT string // thumbprint of the proof's key
	htu string // normalized
}

// Verify is Check, then Record.
func (v *Verifier) Verify(req Request) (Proof, error) {
	p, err := v.Check(req)
	if err != nil {
		return Proof{}, err
	}
	if err := v.Record(p); err != nil {
		return Proof{}, err
	}
	return p, nil
}

// Check checks req's proof as RFC 9449 section 4.3 lists, then its ath
// and key against the token, then its nonce (if Nonces is set); all but
// the replay check, which Record makes. The error wraps one of the Err
// values; its text names the failed check and never contains the token.
func (v *Verifier) Check(req Request) (Proof, error) {
	if len(req.Proofs) != 1 {
		return Proof{}, fmt.Errorf("%w: got %d", ErrCount, len(req.Proofs))
	}
	p, err := parse(req.Proofs[0])
	if err != nil {
		return Proof{}, err
	}
	if err := v.check(p, req); err != nil {
		return Proof{}, err
	}
	return Proof{JTI: p.claims.JTI, IAT: time.Unix(*p.claims.IAT, 0), JKT: p.jkt, htu: p.htu}, nil
}

// Record notes the jti of a proof Check accepted, for its htu, until the
// proof could no longer be accepted. It returns ErrReplay if the jti was
// already noted for that htu, ErrReplayFull (fail closed) if the cache
// holds MaxReplay live values. A caller that refuses a request for other
// reasons (scope, rate) may skip Record, so that such requests do not
// fill the cache.
func (v *Verifier) Record(p Proof) error {
	if err := v.seen.add(p.htu, p.JTI, p.IAT.Add(v.cfg.Window), v.cfg.Now()); err != nil {
		if err == ErrReplayFull {
			v.refused.Add(1)
		}
		return fmt.Errorf("%w: jti %q", err, clip(p.JTI))
	}
	return nil
}

// ReplayRefusals is how many proofs were refused because the replay
// cache was full.
func (v *Verifier) ReplayRefusals() uint64 { return v.refused.Load() }

// ReplayEntries is how many jti values the replay cache holds.
func (v *Verifier) ReplayEntries() int { return v.seen.len() }

// Nonces returns the nonce source (nil when nonces are off).
func (v *Verifier) Nonces() *Nonces { return v.cfg.Nonces }

// check runs the claim checks on a parsed, signature-verified proof.
func (v *Verifier) check(p *parsed, req Request) error {
	c := p.claims
	if c.Method != req.Method {
		return fmt.Errorf("%w: htm %q, request %s", ErrMethod, clip(c.Method), req.Method)
	}
	want, err := NormalizeURI(req.URI)
	if err != nil {
		return fmt.Errorf("%w: request URI: %v", ErrURI, err)
	}
	if p.htu != want {
		return fmt.Errorf("%w: htu %q, want %q", ErrURI, clip(c.URI), want)
	}
	now := v.cfg.Now()
	iat := time.Unix(*c.IAT, 0)
	if iat.Before(now.Add(-v.cfg.Window)) || iat.After(now.Add(v.cfg.Window)) {
		return fmt.Errorf("%w: iat %s, now %s, window %s", ErrIssuedAt, iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.cfg.Window)
	}
	sum := sha256.Sum256([]byte(req.Token))
	ath := base64.RawURLEncoding.EncodeToString(sum[:])
	if c.ATH == nil || subtle.ConstantTimeCompare([]byte(*c.ATH), []byte(ath)) != 1 {
		return fmt.Errorf("%w: ath missing or wrong", ErrTokenHash)
	}
	if req.JKT == "" || subtle.ConstantTimeCompare([]byte(p.jkt), []byte(req.JKT)) != 1 {
		return fmt.Errorf("%w: proof key %s", ErrBinding, p.jkt)
	}
	if n := v.cfg.Nonces; n != nil {
		if c.Nonce == nil || !n.Valid(*c.Nonce, now) {
			return fmt.Errorf("%w", ErrNonce)
		}
	}
	return nil
}

// claims is a proof's payload.
type claims struct {
	JTI    string  `json:"jti"`
	Method string  `json:"htm"`
	URI    string  `json:"htu"`
	IAT    *int64  `json:"iat"`
	ATH    *string `json:"ath"`
	Nonce  *string `json:"nonce"`
}

// header is a proof's protected header, read before go-jose parses it so
// that typ and private key members are judged on the bytes sent.
type header struct {
	Typ string                     `json:"typ"`
	Alg string                     `json:"alg"`
	JWK map[string]json.RawMessage `json:"jwk"`
}

// privateMembers are the JWK members that hold private or symmetric key
// material (RFC 7518 section 6).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parsed is a proof whose form and signature are verified.
type parsed struct {
	claims claims
	htu    string // normalized htu
	jkt    string // RFC 7638 SHA-256 thumbprint of the jwk, base64url
}

// parse parses a compact proof and verifies its signature with its own
// jwk (RFC 9449 section 4.3 steps 2 to 7): one JWS of at most
// MaxProofSize bytes, typ dpop+jwt, an allowed alg, a public jwk, a valid
// signature, and the claims jti (at most MaxJTI bytes), htm, htu (an
// absolute URI) and iat present.
func parse(s string) (*parsed, error) {
	if len(s) > MaxProofSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(s), MaxProofSize)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header encoding", ErrMalformed)
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: header JSON", ErrMalformed)
	}
	if h.Typ != "dpop+jwt" {
		return nil, fmt.Errorf("%w: typ %q", ErrType, clip(h.Typ))
	}
	if !allowed(h.Alg) {
		return nil, fmt.Errorf("%w: alg %q (allowed: %s)", ErrAlgorithm, clip(h.Alg), AlgList)
	}
	if h.JWK == nil {
		return nil, fmt.Errorf("%w: no jwk", ErrKey)
	}
	for _, m := range privateMembers {
		if _, ok := h.JWK[m]; ok {
			return nil, fmt.Errorf("%w: jwk has private member %q", ErrKey, m)
		}
	}
	if parts[2] == "" {
		return nil, fmt.Errorf("%w: no signature", ErrMalformed)
	}
	jws, err := jose.ParseSignedCompact(s, Algorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrMalformed, len(jws.Signatures))
	}
	jwk := jws.Signatures[0].Protected.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, fmt.Errorf("%w: jwk missing, invalid or not public", ErrKey)
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, fmt.Errorf("%w", ErrSignature)
	}
	return parseClaims(payload, jwk)
}

// parseClaims decodes and checks the presence of the required claims.
func parseClaims(payload []byte, jwk *jose.JSONWebKey) (*parsed, error) {
	p := &parsed{}
	if err := json.Unmarshal(payload, &p.claims); err != nil {
		return nil, fmt.Errorf("%w: payload JSON", ErrClaims)
	}
	c := p.claims
	switch {
	case c.JTI == "" || len(c.JTI) > MaxJTI:
		return nil, fmt.Errorf("%w: jti missing or over %d bytes", ErrClaims, MaxJTI)
	case c.Method == "":
		return nil, fmt.Errorf("%w: htm missing", ErrClaims)
	case c.IAT == nil:
		return nil, fmt.Errorf("%w: iat missing", ErrClaims)
	}
	htu, err := NormalizeURI(c.URI)
	if err != nil {
		return nil, fmt.Errorf("%w: htu: %v", ErrClaims, err)
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: thumbprint: %v", ErrKey, err)
	}
	p.htu, p.jkt = htu, base64.RawURLEncoding.EncodeToString(tp)
	return p, nil
}

func allowed(alg string) bool {
	for _, a := range Algorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of a public key (an
// *ecdsa.PublicKey, ed25519.PublicKey, ...), base64url without padding:
// the jkt a token bound to it carries.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	k := jose.JSONWebKey{Key: pub}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// clip shortens client text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
