package loadgen

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"latchkey/internal/store"
)

// GatewayDPoP is the audited gateway driven with DPoP-bound tokens, each
// request with a fresh proof (Config.DPoP).
const GatewayDPoP = "gateway-dpop"

// prover signs a fresh DPoP proof per request, as a contractor's client
// does: ES256, a unique jti, iat now, htu the target's URL, ath of the
// token. The signing happens on the load client's goroutines, so it
// shares the machine's cores with the gateway, as the bearer clients do
// not: the comparison is, if anything, unfair to DPoP.
type prover struct {
	htu  string
	keys map[string]*proofKey // by the Authorization value "DPoP TEXT"
	n    atomic.Uint64
}

// proofKey is one token's key.
type proofKey struct {
	signer jose.Signer
	ath    string // base64url SHA-256 of the token text
	prefix string // of the claims, up to the jti
}

// newProofKey makes a key for the token text and returns it with its
// RFC 7638 thumbprint (the token's cnf jkt).
func newProofKey(text, htu string) (*proofKey, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	jwk := &jose.JSONWebKey{Key: &key.PublicKey}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, "", err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": jwk}})
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256([]byte(text))
	ath := base64.RawURLEncoding.EncodeToString(sum[:])
	k := &proofKey{signer: s, ath: ath, prefix: `{"htm":"GET","htu":` + strconv.Quote(htu) + `,"ath":"` + ath + `","jti":"`}
	return k, base64.RawURLEncoding.EncodeToString(tp), nil
}

// proof returns a fresh proof for a request with Authorization auth.
func (p *prover) proof(auth string) (string, error) {
	k := p.keys[auth]
	if k == nil {
		return "", fmt.Errorf("loadgen: no DPoP key for this token")
	}
	claims := k.prefix + "lg-" + strconv.FormatUint(p.n.Add(1), 36) + `","iat":` + strconv.FormatInt(time.Now().Unix(), 10) + `}`
	jws, err := k.signer.Sign([]byte(claims))
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// dpopTokens creates n DPoP-bound tokens, each with its own key, and
// returns their Authorization values ("DPoP TEXT") and their prover for
// proofs naming htu.
func dpopTokens(ctx context.Context, st store.Store, n int, htu string) ([]string, *prover, error) {
	keys := make([]*proofKey, n)
	auths, err := createTokens(ctx, st, n, time.Now(), func(i int, text string) (string, error) {
		k, jkt, err := newProofKey(text, htu)
		keys[i] = k
		return jkt, err
	})
	if err != nil {
		return nil, nil, err
	}
	p := &prover{htu: htu, keys: make(map[string]*proofKey, n)}
	for i, a := range auths {
		p.keys[a] = keys[i]
	}
	return auths, p, nil
}
