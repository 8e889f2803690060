package proof

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestSignRoundTrip(t *testing.T) {
	for _, alg := range []string{ES256, EdDSA} {
		k, err := NewKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := ParseKey(b)
		if err != nil || k2.Alg() != alg || k2.Thumbprint() != k.Thumbprint() {
			t.Fatalf("%s: ParseKey(MarshalPEM) = %v, %v", alg, k2, err)
		}
		u, _ := url.Parse("https://GW.example:443/billing/v1?x=1#f")
		now := time.Unix(1700000000, 0)
		p, err := k2.Sign(Request{Method: "GET", URL: u, Token: "tok", Nonce: "n1", Time: now})
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSigned(p, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
		if err != nil {
			t.Fatal(err)
		}
		h := jws.Signatures[0].Protected
		payload, err := jws.Verify(h.JSONWebKey)
		if err != nil || h.ExtraHeaders["typ"] != "dpop+jwt" || !h.JSONWebKey.IsPublic() {
			t.Fatalf("%s: verify %v, header %+v", alg, err, h)
		}
		var c map[string]any
		json.Unmarshal(payload, &c)
		sum := sha256.Sum256([]byte("tok"))
		want := map[string]any{"htm": "GET", "htu": "https://gw.example/billing/v1", "iat": 1.7e9,
			"ath": base64.RawURLEncoding.EncodeToString(sum[:]), "nonce": "n1", "jti": c["jti"]}
		if len(c) != len(want) || c["jti"] == "" {
			t.Errorf("%s: claims %v, want %v", alg, c, want)
		}
		for k, v := range want {
			if c[k] != v {
				t.Errorf("%s: claim %s = %v, want %v", alg, k, c[k], v)
			}
		}
	}
}

// TestThumbprintVector checks the RFC 8037 appendix A.3 thumbprint of
// its Ed25519 key (RFC 7638 has only an RSA vector).
func TestThumbprintVector(t *testing.T) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(`{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`)); err != nil {
		t.Fatal(err)
	}
	k := &Key{priv: jwk.Key.(ed25519.PrivateKey), alg: EdDSA}
	if got, want := k.Thumbprint(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Errorf("Thumbprint = %s, want %s", got, want)
	}
}

func TestHTU(t *testing.T) {
	tests := map[string]string{
		"https://gw.example/a/b?q=1#x":   "https://gw.example/a/b",
		"https://GW.Example:443/a":       "https://gw.example/a",
		"HTTPS://gw.example:8443":        "https://gw.example:8443/",
		"http://127.0.0.1:80/x%2Fy":      "http://127.0.0.1/x%2Fy",
		"http://[::1]:7371/svc/a b":      "http://[::1]:7371/svc/a%20b",
		"https://gw.example/caf%C3%A9/?": "https://gw.example/caf%C3%A9/",
	}
	for in, want := range tests {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := HTU(u); got != want {
			t.Errorf("HTU(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	k, _ := NewKey(ES256)
	good, _ := k.MarshalPEM()
	tests := map[string]string{
		"empty":         "",
		"garbage":       "not a key",
		"two blocks":    string(good) + string(good),
		"trailing text": string(good) + "x",
		"wrong type":    "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
		"bad DER":       "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	}
	for name, in := range tests {
		if _, err := ParseKey([]byte(in)); !errors.Is(err, ErrKeyFormat) {
			t.Errorf("%s: ParseKey = %v, want ErrKeyFormat", name, err)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	k, _ := NewKey(EdDSA)
	good, _ := k.MarshalPEM()
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKey(b)
		if err != nil {
			return
		}
		again, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := ParseKey(again)
		if err != nil || k2.Thumbprint() != k.Thumbprint() {
			t.Fatalf("round trip: %v", err)
		}
	})
}
