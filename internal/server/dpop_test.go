package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
)

// TestServeDPoP: through serve, a token issued with --bind dpop reaches a
// real upstream with a fresh proof by its key per request (and neither the
// token nor the proof gets there); the same token without the key is
// refused: as Bearer, with no proof, with a proof by another key, or with
// a replayed proof. A stolen bound token without the key is useless.
func TestServeDPoP(t *testing.T) {
	var hits atomic.Int64
	var gotAuth, gotDPoP string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		gotAuth, gotDPoP = r.Header.Get("Authorization"), r.Header.Get("DPoP")
		io.WriteString(w, "hello")
	}))
	defer up.Close()
	dir := newDir(t)
	cfg := testConfig(dir, &syncBuffer{})
	cfg.GatewayAddr = "127.0.0.1:0"
	r := start(t, cfg)
	ctx := t.Context()
	gw, _ := onboard(t, r, adminapi.NewService{Name: "billing", Upstream: up.URL,
		CredentialHeaders: []access.Header{{Name: "Authorization", Value: "Bearer upstream-secret"}}}, "billing:read:/v1/**", "billing:GET:/v1/x")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	thief, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	cl := &adminapi.Client{Addr: r.url, Token: adminToken(t, r.stdout.String())}
	iss, err := cl.IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: "1h",
		Bind: access.BindDPoP, JKT: base64.RawURLEncoding.EncodeToString(tp)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	proof := func(k *ecdsa.PrivateKey) string {
		t.Helper()
		n++
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
			&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": &jose.JSONWebKey{Key: &k.PublicKey}}})
		if err != nil {
			t.Fatal(err)
		}
		ath := sha256.Sum256([]byte(iss.Token))
		c, _ := json.Marshal(map[string]any{"jti": "e2e-" + strconv.Itoa(n), "htm": "GET", "htu": gw + "/billing/v1/x",
			"iat": time.Now().Unix(), "ath": base64.RawURLEncoding.EncodeToString(ath[:])})
		jws, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := jws.CompactSerialize()
		return out
	}
	call := func(auth, dpop string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", gw+"/billing/v1/x", nil)
		req.Header.Set("Authorization", auth)
		if dpop != "" {
			req.Header.Set("DPoP", dpop)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	for i := 0; i < 2; i++ {
		if status, body, _ := call("DPoP "+iss.Token, proof(key)); status != 200 || body != "hello" {
			t.Fatalf("request %d with a valid proof: %d %s", i, status, body)
		}
	}
	if gotAuth != "Bearer upstream-secret" || gotDPoP != "" {
		t.Fatalf("upstream saw Authorization %q, DPoP %q", gotAuth, gotDPoP)
	}
	used := proof(key)
	if status, _, _ := call("DPoP "+iss.Token, used); status != 200 {
		t.Fatal("a fresh proof was refused")
	}
	before := hits.Load()
	for name, c := range map[string][2]string{
		"as Bearer":              {"Bearer " + iss.Token, ""},
		"as Bearer with a proof": {"Bearer " + iss.Token, proof(key)},
		"without a proof":        {"DPoP " + iss.Token, ""},
		"with the thief's key":   {"DPoP " + iss.Token, proof(thief)},
		"with a replayed proof":  {"DPoP " + iss.Token, used},
	} {
		status, body, h := call(c[0], c[1])
		if status != 401 || !strings.Contains(body, `"proof_invalid"`) || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
			t.Errorf("stolen token %s: %d %s (%q), want 401 proof_invalid", name, status, body, h.Get("WWW-Authenticate"))
		}
	}
	if hits.Load() != before {
		t.Fatal("a refused request reached the upstream")
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}
