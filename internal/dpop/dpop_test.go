package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// signer builds proofs with go-jose, as a client does.
type signer struct {
	jkt  string
	sign jose.Signer
}

func newSigner(tb testing.TB) *signer {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return newSignerOf(tb, key, &key.PublicKey, jose.ES256)
}

func newSignerOf(tb testing.TB, key, pub any, alg jose.SignatureAlgorithm) *signer {
	tb.Helper()
	jwk := &jose.JSONWebKey{Key: pub}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": jwk}})
	if err != nil {
		tb.Fatal(err)
	}
	tp, _ := jwk.Thumbprint(crypto.SHA256)
	return &signer{jkt: base64.RawURLEncoding.EncodeToString(tp), sign: s}
}

func (s *signer) proof(tb testing.TB, jti, htu, token string, iat time.Time, nonce string) string {
	tb.Helper()
	sum := sha256.Sum256([]byte(token))
	c := map[string]any{"jti": jti, "htm": "GET", "htu": htu, "iat": iat.Unix(), "ath": base64.RawURLEncoding.EncodeToString(sum[:])}
	if nonce != "" {
		c["nonce"] = nonce
	}
	b, _ := json.Marshal(c)
	jws, err := s.sign.Sign(b)
	if err != nil {
		tb.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

const testURI = "https://gw.example.com/billing/v1/x"

func req(s *signer, proof string) Request {
	return Request{Proofs: []string{proof}, Method: "GET", URI: testURI, Token: "lk_token", JKT: s.jkt}
}

// TestReplayFailsClosed: once the cache holds MaxReplay live jti values,
// new proofs are refused (and counted), never admitted unchecked; when
// those expire, there is room again.
func TestReplayFailsClosed(t *testing.T) {
	now := t0
	v, err := New(Config{Now: func() time.Time { return now }, MaxReplay: 64})
	if err != nil {
		t.Fatal(err)
	}
	s := newSigner(t)
	var full error
	for i := 0; i < 10000 && full == nil; i++ {
		_, full = v.Verify(req(s, s.proof(t, "j"+strconv.Itoa(i), testURI, "lk_token", now, "")))
	}
	if !errors.Is(full, ErrReplayFull) || v.ReplayRefusals() != 1 {
		t.Fatalf("got %v after filling, refusals %d; want ErrReplayFull", full, v.ReplayRefusals())
	}
	if n := v.ReplayEntries(); n > 64+shards {
		t.Errorf("cache holds %d entries, cap 64 (+%d rounding)", n, shards)
	}
	now = now.Add(DefaultWindow + time.Second)
	if _, err := v.Verify(req(s, s.proof(t, "later", testURI, "lk_token", now, ""))); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

// TestReplayPerURI: a jti is remembered per htu; the same jti for the same
// htu is a replay, also in another spelling of the URI.
func TestReplayPerURI(t *testing.T) {
	v, _ := New(Config{Now: func() time.Time { return t0 }})
	s := newSigner(t)
	if _, err := v.Verify(req(s, s.proof(t, "j", testURI, "lk_token", t0, ""))); err != nil {
		t.Fatal(err)
	}
	other := req(s, s.proof(t, "j", "https://gw.example.com/billing/v1/y", "lk_token", t0, ""))
	other.URI = "https://gw.example.com/billing/v1/y"
	if _, err := v.Verify(other); err != nil {
		t.Fatalf("same jti, other htu: %v", err)
	}
	if _, err := v.Verify(req(s, s.proof(t, "j", "HTTPS://gw.example.com:443/billing/v1/x", "lk_token", t0, ""))); !errors.Is(err, ErrReplay) {
		t.Fatalf("same jti, same htu spelled otherwise: %v, want ErrReplay", err)
	}
}

func TestNonces(t *testing.T) {
	n, err := NewNonces(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewNonces(nil, 0)
	x := n.Issue(t0)
	if !n.Valid(x, t0) || !n.Valid(x, t0.Add(DefaultNonceSlot)) {
		t.Error("a fresh nonce is not valid in its slot and the next")
	}
	if n.Valid(x, t0.Add(2*DefaultNonceSlot)) || n.Valid(x, t0.Add(-DefaultNonceSlot)) {
		t.Error("a nonce is valid outside its slot and the next")
	}
	if m.Valid(x, t0) {
		t.Error("a nonce of another key is valid")
	}
	if _, err := NewNonces(make([]byte, 16), 0); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}

func TestNormalizeURI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://gw.example.com/a", "https://gw.example.com/a"},
		{"HTTPS://GW.Example.COM:443/a", "https://gw.example.com/a"},
		{"http://gw.example.com:80", "http://gw.example.com/"},
		{"http://gw.example.com:8080/a?q=1#f", "http://gw.example.com:8080/a"},
		{"https://gw.example.com:80/a", "https://gw.example.com:80/a"},
		{"https://gw.example.com/%7euser/%2f%c3%a9", "https://gw.example.com/~user/%2F%C3%A9"},
		{"https://[::1]:443/a", "https://[::1]/a"},
		{"https://[::1]:8443/a", "https://[::1]:8443/a"},
		{"/relative", ""},
		{"ftp://gw.example.com/a", ""},
		{"https://user@gw.example.com/a", ""},
		{"https:///a", ""},
		{"https://gw.example.com/%zz", ""},
	}
	for _, tt := range tests {
		got, err := NormalizeURI(tt.in)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("NormalizeURI(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// BenchmarkVerify is the cost of checking one fresh proof: parse,
// signature, claims, thumbprint, replay cache.
func BenchmarkVerify(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []struct {
		name string
		s    *signer
	}{{"ES256", newSigner(b)}, {"EdDSA", newSignerOf(b, priv, pub, jose.EdDSA)}} {
		b.Run(s.name, func(b *testing.B) {
			v, _ := New(Config{Now: func() time.Time { return t0 }, MaxReplay: 1 << 24})
			proofs := make([]string, b.N)
			for i := range proofs {
				proofs[i] = s.s.proof(b, "jti-"+strconv.Itoa(i), testURI, "lk_token", t0, "")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := v.Verify(req(s.s, proofs[i])); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
