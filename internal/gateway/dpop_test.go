package gateway_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/dpop"
	"latchkey/internal/gateway"
)

// The proofs of these tests are built here with go-jose alone, the way a
// client would, never with package dpop's code.

const dpopTarget = "/billing/v1/x"

// dpopHTU is the htu of a proof for dpopTarget: e.send sends Host gw.test
// and newEnv's gateway has no PublicURL, so the gateway derives this.
const dpopHTU = "http://gw.test" + dpopTarget

// proofSpec describes one proof. Zero fields take the defaults of
// (*dpopKit).proof: typ dpop+jwt, the key's public jwk, and claims for
// GET dpopHTU at the env's clock with the token's ath.
type proofSpec struct {
	key    any                     // signing key; default kit.ec
	alg    jose.SignatureAlgorithm // default ES256 (EdDSA for Ed25519)
	header map[jose.HeaderKey]any  // replaces typ and jwk entries
	claims map[string]any          // set (nil value: delete) on the defaults
}

type dpopKit struct {
	e     *env
	ec    *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
	other *ecdsa.PrivateKey
	text  string // token bound to ec
	n     int
}

func newDPoPKit(t *testing.T, e *env) *dpopKit {
	t.Helper()
	k := &dpopKit{e: e}
	var err error
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.other, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.text, _ = e.issue(t, access.IssueRequest{Scopes: []string{"billing:*:/v1/**"}, Bind: access.BindDPoP, Thumbprint: jkt(t, &k.ec.PublicKey)})
	return k
}

// jkt is the RFC 7638 thumbprint of pub, base64url.
func jkt(t *testing.T, pub any) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

func athOf(text string) string {
	sum := sha256.Sum256([]byte(text))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func publicOf(key any) any {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return &k.PublicKey
	case ed25519.PrivateKey:
		return k.Public()
	case *rsa.PrivateKey:
		return &k.PublicKey
	}
	return nil
}

// proof signs the proof sp describes.
func (k *dpopKit) proof(t *testing.T, sp proofSpec) string {
	t.Helper()
	k.n++
	if sp.key == nil {
		sp.key = k.ec
	}
	if sp.alg == "" {
		sp.alg = jose.ES256
		if _, ok := sp.key.(ed25519.PrivateKey); ok {
			sp.alg = jose.EdDSA
		}
	}
	hdr := map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": &jose.JSONWebKey{Key: publicOf(sp.key)}}
	for h, v := range sp.header {
		if v == nil {
			delete(hdr, h)
		} else {
			hdr[h] = v
		}
	}
	cl := map[string]any{
		"jti": "jti-" + time.Now().Format("150405.000000000") + "-" + string(rune('a'+k.n%26)) + strings.Repeat("x", k.n%7),
		"htm": "GET", "htu": dpopHTU, "iat": k.e.clock.Now().Unix(), "ath": athOf(k.text),
	}
	for c, v := range sp.claims {
		if v == nil {
			delete(cl, c)
		} else {
			cl[c] = v
		}
	}
	payload, err := json.Marshal(cl)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: sp.alg, Key: sp.key}, &jose.SignerOptions{ExtraHeaders: hdr})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned is an alg none JWS of the default claims.
func (k *dpopKit) unsigned(t *testing.T) string {
	valid := strings.Split(k.proof(t, proofSpec{}), ".")
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": &jose.JSONWebKey{Key: &k.ec.PublicKey}})
	return base64.RawURLEncoding.EncodeToString(h) + "." + valid[1] + "."
}

// lastRecord is the newest audit record.
func lastRecord(t *testing.T, e *env) audit.Record {
	t.Helper()
	ctx := context.Background()
	n, err := e.log.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := e.log.Record(ctx, n-1)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDPoPRejections sends each way a DPoP proof can fail RFC 9449
// section 4.3 (and 7.1, 8, 11.1) through the gateway: each is answered 401
// proof_invalid with a DPoP challenge, audited as such, and never reaches
// the upstream.
func TestDPoPRejections(t *testing.T) {
	e := newEnv(t)
	k := newDPoPKit(t, e)
	ne := newEnv(t, func(c *gateway.Config) {
		var err error
		if c.DPoP.Nonces, err = dpop.NewNonces(nil, 0); err != nil {
			t.Fatal(err)
		}
	})
	nk := newDPoPKit(t, ne)
	unbound, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:*:/v1/**"}})
	mtls, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:*:/v1/**"}, Bind: access.BindMTLS, Thumbprint: jkt(t, &k.other.PublicKey)})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	replayed := k.proof(t, proofSpec{})
	if r := e.send(t, "GET", dpopTarget, "DPoP "+k.text, "DPoP: "+replayed); r.status != 200 {
		t.Fatalf("first use of the replayed proof: %d %s", r.status, r.body)
	}
	withPriv := &jose.JSONWebKey{Key: k.ec}
	validSig := k.proof(t, proofSpec{})
	parts := strings.Split(validSig, ".")
	// Another signature of the same length, flipped in its bytes (a
	// flip in the text could leave the base64url alphabet: '-' ^ 1 is ',').
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 1
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat("k", 32))},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": &jose.JSONWebKey{Key: &k.ec.PublicKey}}})
	if err != nil {
		t.Fatal(err)
	}
	hsJWS, err := hs.Sign([]byte(`{"jti":"hs","htm":"GET","htu":"` + dpopHTU + `","iat":` + jsonInt(e.clock.Now().Unix()) + `,"ath":"` + athOf(k.text) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	hsProof, _ := hsJWS.CompactSerialize()
	now := e.clock.Now().Unix()

	tests := []struct {
		name    string
		env     *env
		auth    string   // default "DPoP " + k.text
		proofs  []string // DPoP header values
		code    string   // WWW-Authenticate error; default invalid_dpop_proof
		wantErr error    // the dpop rejection, named in the message
	}{
		{name: "wrong typ", proofs: []string{k.proof(t, proofSpec{header: map[jose.HeaderKey]any{"typ": "JWT"}})}, wantErr: dpop.ErrType},
		{name: "no typ", proofs: []string{k.proof(t, proofSpec{header: map[jose.HeaderKey]any{"typ": nil}})}, wantErr: dpop.ErrType},
		{name: "alg none", proofs: []string{k.unsigned(t)}, wantErr: dpop.ErrAlgorithm},
		{name: "HS256", proofs: []string{hsProof}, wantErr: dpop.ErrAlgorithm},
		{name: "RS256 not offered", proofs: []string{k.proof(t, proofSpec{key: rsaKey, alg: jose.RS256})}, wantErr: dpop.ErrAlgorithm},
		{name: "private key in jwk", proofs: []string{k.proof(t, proofSpec{header: map[jose.HeaderKey]any{"jwk": withPriv}})}, wantErr: dpop.ErrKey},
		{name: "no jwk", proofs: []string{k.proof(t, proofSpec{header: map[jose.HeaderKey]any{"jwk": nil}})}, wantErr: dpop.ErrKey},
		{name: "bad signature", proofs: []string{badSig}, wantErr: dpop.ErrSignature},
		{name: "jwk of another key", proofs: []string{k.proof(t, proofSpec{header: map[jose.HeaderKey]any{"jwk": &jose.JSONWebKey{Key: &k.other.PublicKey}}})}, wantErr: dpop.ErrSignature},
		{name: "htm mismatch", proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"htm": "POST"}})}, wantErr: dpop.ErrMethod},
		{name: "htu other path", proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"htu": "http://gw.test/billing/v1/y"}})}, wantErr: dpop.ErrURI},
		{name: "htu other host", proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"htu": "http://evil.test" + dpopTarget}})}, wantErr: dpop.ErrURI},
		{name: "htu other scheme", proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"htu": "https://gw.test" + dpopTarget}})}, wantErr: dpop.ErrURI},
		{name: "stale iat", proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"iat": now - 120}})}, wantErr: dpop.ErrIssuedAt},
		{name: "future iat", proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"iat": now + 120}})}, wantErr: dpop.ErrIssuedAt},
		{name: "replayed jti", proofs: []string{replayed}, wantErr: dpop.ErrReplay},
		{name: "missing jti", proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"jti": nil}})}, wantErr: dpop.ErrClaims},
		{name: "overlong jti", proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"jti": strings.Repeat("j", 257)}})}, wantErr: dpop.ErrClaims},
		{name: "missing ath", proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"ath": nil}})}, wantErr: dpop.ErrTokenHash},
		{name: "wrong ath", proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"ath": athOf(unbound)}})}, wantErr: dpop.ErrTokenHash},
		{name: "other key (jkt mismatch)", proofs: []string{k.proof(t, proofSpec{key: k.other})}, wantErr: dpop.ErrBinding},
		{name: "other Ed25519 key", proofs: []string{k.proof(t, proofSpec{key: k.ed})}, wantErr: dpop.ErrBinding},
		{name: "bound token as Bearer", auth: "Bearer " + k.text, proofs: []string{k.proof(t, proofSpec{})}},
		{name: "bound token as Bearer without proof", auth: "Bearer " + k.text},
		{name: "unbound token with DPoP", auth: "DPoP " + unbound, proofs: []string{k.proof(t, proofSpec{claims: map[string]any{"ath": athOf(unbound)}})}},
		{name: "mTLS-bound token with DPoP", auth: "DPoP " + mtls, proofs: []string{k.proof(t, proofSpec{key: k.other, claims: map[string]any{"ath": athOf(mtls)}})}},
		{name: "no DPoP header", wantErr: dpop.ErrCount},
		{name: "two DPoP headers", proofs: []string{k.proof(t, proofSpec{}), k.proof(t, proofSpec{})}, wantErr: dpop.ErrCount},
		{name: "malformed JWS", proofs: []string{"not-a-jws"}, wantErr: dpop.ErrMalformed},
		{name: "JWS JSON serialization", proofs: []string{`{"payload":"e30","signatures":[]}`}, wantErr: dpop.ErrMalformed},
		{name: "oversized", proofs: []string{strings.Repeat("a", 9000) + ".b.c"}, wantErr: dpop.ErrMalformed},
		{name: "missing nonce when required", env: ne, auth: "DPoP " + nk.text, proofs: []string{nk.proof(t, proofSpec{})}, code: dpop.CodeUseNonce, wantErr: dpop.ErrNonce},
		{name: "forged nonce", env: ne, auth: "DPoP " + nk.text, proofs: []string{nk.proof(t, proofSpec{claims: map[string]any{"nonce": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}})}, code: dpop.CodeUseNonce, wantErr: dpop.ErrNonce},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := e
			if tt.env != nil {
				env = tt.env
			}
			auth := tt.auth
			if auth == "" {
				auth = "DPoP " + k.text
				if env == ne {
					auth = "DPoP " + nk.text
				}
			}
			var more []string
			for _, p := range tt.proofs {
				more = append(more, "DPoP: "+p)
			}
			before := env.hits.Load()
			r := env.send(t, "GET", dpopTarget, auth, more...)
			if r.status != 401 || r.err != gateway.ReasonProofInvalid || r.msg == "" {
				t.Fatalf("got %d %q (%q), want 401 proof_invalid", r.status, r.err, r.msg)
			}
			code := tt.code
			if code == "" {
				code = dpop.CodeInvalidProof
			}
			want := `DPoP realm="latchkey", error="` + code + `", algs="ES256 EdDSA"`
			if got := r.header.Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
			if code == dpop.CodeUseNonce && r.header.Get("DPoP-Nonce") == "" {
				t.Error("use_dpop_nonce without a DPoP-Nonce header")
			}
			if tt.wantErr != nil && !strings.Contains(r.msg, tt.wantErr.Error()) {
				t.Errorf("message %q, want it to name %q", r.msg, tt.wantErr)
			}
			if env.hits.Load() != before {
				t.Fatal("a refused request reached the upstream")
			}
			if rec := lastRecord(t, env); rec.Reason != gateway.ReasonProofInvalid || rec.Decision != audit.Deny || rec.Status != 401 || rec.TokenID == "" {
				t.Errorf("audit record %+v, want a 401 proof_invalid denial of the token", rec)
			}
			if strings.Contains(r.msg, strings.TrimPrefix(strings.TrimPrefix(auth, "DPoP "), "Bearer ")) {
				t.Errorf("message %q contains the token", r.msg)
			}
		})
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestDPoPAllowed: a proof by the bound key (ES256 or EdDSA), with the
// scheme in any case, is forwarded; neither the token nor the proof
// reaches the upstream, which gets the service's credential.
func TestDPoPAllowed(t *testing.T) {
	e := newEnv(t)
	k := newDPoPKit(t, e)
	edText, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:*:/v1/**"}, Bind: access.BindDPoP, Thumbprint: jkt(t, k.ed.Public())})
	tests := []struct {
		name, auth, proof, target string
	}{
		{"ES256", "DPoP " + k.text, k.proof(t, proofSpec{}), dpopTarget},
		{"scheme lower case", "dpop " + k.text, k.proof(t, proofSpec{}), dpopTarget},
		{"htu normalised", "DPoP " + k.text, k.proof(t, proofSpec{claims: map[string]any{"htu": "HTTP://GW.TEST:80/billing/v1/%78"}}), dpopTarget},
		{"htu with query", "DPoP " + k.text, k.proof(t, proofSpec{claims: map[string]any{"htu": dpopHTU + "?a=1#f"}}), dpopTarget + "?b=2"},
		{"iat at the window's edge", "DPoP " + k.text, k.proof(t, proofSpec{claims: map[string]any{"iat": e.clock.Now().Unix() - 60}}), dpopTarget},
	}
	k2 := *k
	k2.text = edText
	tests = append(tests, struct{ name, auth, proof, target string }{"EdDSA", "DPoP " + edText, k2.proof(t, proofSpec{key: k.ed}), dpopTarget})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.send(t, "GET", tt.target, tt.auth, "DPoP: "+tt.proof)
			if r.status != 200 {
				t.Fatalf("got %d %q (%q), want 200", r.status, r.err, r.msg)
			}
			checkUpstreamSaw(t, e, "/base"+strings.TrimPrefix(tt.target, "/billing"), strings.Fields(tt.auth)[1])
			if got := e.last.Load().header.Values("Dpop"); len(got) != 0 {
				t.Errorf("the proof reached the upstream: %q", got)
			}
			if rec := lastRecord(t, e); rec.Decision != audit.Allow {
				t.Errorf("audit record %+v, want an allow", rec)
			}
		})
	}
}

// TestDPoPNonce: with nonces on, a proof without one is answered
// use_dpop_nonce with a DPoP-Nonce, and the same request with a proof
// carrying that nonce goes through (RFC 9449 section 8).
func TestDPoPNonce(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		var err error
		if c.DPoP.Nonces, err = dpop.NewNonces(nil, 0); err != nil {
			t.Fatal(err)
		}
	})
	k := newDPoPKit(t, e)
	r := e.send(t, "GET", dpopTarget, "DPoP "+k.text, "DPoP: "+k.proof(t, proofSpec{}))
	nonce := r.header.Get("DPoP-Nonce")
	if r.status != 401 || nonce == "" || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("got %d %q, nonce %q, challenge %q", r.status, r.err, nonce, r.header.Get("WWW-Authenticate"))
	}
	r = e.send(t, "GET", dpopTarget, "DPoP "+k.text, "DPoP: "+k.proof(t, proofSpec{claims: map[string]any{"nonce": nonce}}))
	if r.status != 200 {
		t.Fatalf("with the nonce: %d %q %q", r.status, r.err, r.msg)
	}
	e.clock.Add(2 * dpop.DefaultNonceSlot)
	r = e.send(t, "GET", dpopTarget, "DPoP "+k.text, "DPoP: "+k.proof(t, proofSpec{claims: map[string]any{"nonce": nonce}}))
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || r.header.Get("DPoP-Nonce") == nonce {
		t.Fatalf("stale nonce: %d %q, challenge %q", r.status, r.err, r.header.Get("WWW-Authenticate"))
	}
}

// TestDPoPFailureBudget: proof failures count against the source's budget
// of authentication failures, like other 401s.
func TestDPoPFailureBudget(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.FailureRate, c.FailureBurst = 0.001, 3 })
	k := newDPoPKit(t, e)
	for i := 0; i < 3; i++ {
		if r := e.send(t, "GET", dpopTarget, "DPoP "+k.text, "DPoP: "+k.proof(t, proofSpec{key: k.other})); r.status != 401 {
			t.Fatalf("failure %d: %d", i, r.status)
		}
	}
	if r := e.send(t, "GET", dpopTarget, "DPoP "+k.text, "DPoP: "+k.proof(t, proofSpec{})); r.status != 429 {
		t.Fatalf("after the budget: %d %q, want 429", r.status, r.err)
	}
}

// TestDPoPPublicURL: with PublicURL set, the htu must name it, whatever
// Host the request carries.
func TestDPoPPublicURL(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.PublicURL = "https://GW.example.com:443/" })
	k := newDPoPKit(t, e)
	if r := e.send(t, "GET", dpopTarget, "DPoP "+k.text, "DPoP: "+k.proof(t, proofSpec{})); r.status != 401 {
		t.Fatalf("htu of the Host header: %d, want 401", r.status)
	}
	p := k.proof(t, proofSpec{claims: map[string]any{"htu": "https://gw.example.com" + dpopTarget}})
	if r := e.send(t, "GET", dpopTarget, "DPoP "+k.text, "DPoP: "+p); r.status != 200 {
		t.Fatalf("htu of PublicURL: %d %q %q", r.status, r.err, r.msg)
	}
}
