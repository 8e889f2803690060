package loadgen

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"latchkey/internal/store"
)

// GatewayDPoP is the audited gateway driven with DPoP-bound tokens, each
// request with a proof of its own (Config.DPoP).
const GatewayDPoP = "gateway-dpop"

// How many proofs are pre-signed for a round (see proofsPerConn).
const (
	// proofSafety is the factor over the expected requests of a round.
	proofSafety = 1.5
	// proofMinPerConn is the fewest proofs pre-signed per connection.
	proofMinPerConn = 16
	// proofMaxTotal caps the proofs of one round (about 600 bytes each).
	proofMaxTotal = 1 << 18
	// proofFallbackRate is the requests per second assumed when no round
	// of the DPoP or the audited bearer target has been measured yet.
	proofFallbackRate = 20000
	// proofMaxAge is how long after a round's start its pre-signed
	// proofs are sent: their iat is the round's start, and the gateway
	// accepts an iat up to 60 s off its clock. Past it, a connection
	// signs on the fly.
	proofMaxAge = 45 * time.Second
)

// prover signs DPoP proofs as a contractor's client does: ES256, a unique
// jti, htu the target's URL, ath of the token. Before each round it
// pre-signs the round's proofs (presign), so that the signing does not
// share the cores with the gateway inside the timed window; a connection
// that runs out signs on the fly (batch.next).
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

// proof returns a proof with a unique jti and iat for a request with
// Authorization auth.
func (p *prover) proof(auth string, iat time.Time) (string, error) {
	k := p.keys[auth]
	if k == nil {
		return "", fmt.Errorf("loadgen: no DPoP key for this token")
	}
	claims := k.prefix + "lg-" + strconv.FormatUint(p.n.Add(1), 36) + `","iat":` + strconv.FormatInt(iat.Unix(), 10) + `}`
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

// batch is the proofs pre-signed for one round: conn[i][j] is for the
// j-th request of connection i (see target.round for which token that
// is). A nil *batch pre-signed nothing: every proof is signed on the fly.
type batch struct {
	p        *prover
	conn     [][]string
	iat      time.Time
	onTheFly atomic.Int64 // proofs signed on the fly by next
}

// presign signs perConn proofs for each of conns connections stepping
// through auths as target.round does, all with iat, on every core.
func (p *prover) presign(ctx context.Context, auths []string, conns, perConn int, iat time.Time) (*batch, error) {
	b := &batch{p: p, conn: make([][]string, conns), iat: iat}
	errs := make([]error, conns)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= conns {
					return
				}
				proofs := make([]string, perConn)
				for j, k := 0, i%len(auths); j < perConn && errs[i] == nil; j, k = j+1, step(k, conns, len(auths)) {
					proofs[j], errs[i] = p.proof(auths[k], iat)
				}
				b.conn[i] = proofs
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return nil, fmt.Errorf("loadgen: pre-sign DPoP proofs: %w", err)
	}
	return b, nil
}

// next returns the proof for the j-th request of connection i, with
// Authorization auth: the pre-signed one, or, if the connection used all
// of its own or they are older than proofMaxAge, one signed now and
// counted in onTheFly.
func (b *batch) next(i, j int, auth string) (string, error) {
	if j < len(b.conn[i]) && time.Since(b.iat) < proofMaxAge {
		return b.conn[i][j], nil
	}
	b.onTheFly.Add(1)
	return b.p.proof(auth, time.Now())
}

// presigned returns how many proofs b holds.
func (b *batch) presigned() int64 {
	var n int64
	for _, c := range b.conn {
		n += int64(len(c))
	}
	return n
}

// proofsPerConn returns how many proofs to pre-sign per connection for a
// round of d over conns connections expected to serve rate requests per
// second: the expected requests times proofSafety, at least
// proofMinPerConn, at most proofMaxTotal over all connections. Only the
// first proofMaxAge of a round counts: later requests sign on the fly.
func proofsPerConn(rate float64, d time.Duration, conns int) int {
	d = min(d, proofMaxAge)
	n := int(math.Ceil(rate * d.Seconds() * proofSafety / float64(conns)))
	return min(max(n, proofMinPerConn), max(proofMaxTotal/conns, 1))
}
