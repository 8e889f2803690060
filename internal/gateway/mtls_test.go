package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/gateway"
)

// clientCert returns a fresh self-signed client certificate.
func clientCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMTLSBinding: a certificate-bound token passes only with the TLS
// connection state of that certificate; every other way is 401
// proof_invalid with a Bearer challenge, audited, and never forwarded. A
// certificate header a proxy might set counts for nothing. (The real TLS
// handshake is exercised in internal/server and cmd/latchkey.)
func TestMTLSBinding(t *testing.T) {
	e, h := newEnvWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	mine, other := clientCert(t), clientCert(t)
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}, Bind: access.BindMTLS, Thumbprint: gateway.Thumbprint(mine.Raw)})
	withCert := func(cs ...*x509.Certificate) *tls.ConnectionState {
		return &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: cs}
	}
	for _, tc := range []struct {
		name    string
		tls     *tls.ConnectionState
		headers map[string]string
		status  int
		msg     string
	}{
		{"plain HTTP", nil, nil, 401, "accepted only over TLS"},
		{"plain HTTP with a proxy's certificate headers", nil, map[string]string{
			"X-Client-Cert": mine.Subject.CommonName, "X-SSL-Client-Cert": "-----BEGIN CERTIFICATE-----", "X-Forwarded-Client-Cert": "Hash=" + gateway.Thumbprint(mine.Raw),
		}, 401, "accepted only over TLS"},
		{"TLS without a client certificate", withCert(), nil, 401, "none was presented"},
		{"TLS with another certificate", withCert(other), nil, 401, "another client certificate"},
		{"TLS with the certificate only as an intermediate", withCert(other, mine), nil, 401, "another client certificate"},
		{"TLS with the certificate", withCert(mine), nil, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.hits.Load()
			r := httptest.NewRequest("GET", "/billing/v1/x", nil)
			r.RemoteAddr = "192.0.2.1:1234"
			r.TLS = tc.tls
			r.Header.Set("Authorization", "Bearer "+text)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			hits := e.hits.Load() - before
			if tc.status == 200 {
				if w.Code != 200 || hits != 1 {
					t.Fatalf("got %d %s (upstream hits %d), want 200 forwarded", w.Code, w.Body, hits)
				}
				return
			}
			var d struct{ Error, Message string }
			_ = json.Unmarshal(w.Body.Bytes(), &d)
			if w.Code != tc.status || d.Error != gateway.ReasonProofInvalid || !strings.Contains(d.Message, tc.msg) || hits != 0 {
				t.Fatalf("got %d %s (upstream hits %d), want %d proof_invalid %q, not forwarded", w.Code, w.Body, hits, tc.status, tc.msg)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="latchkey", error="invalid_token", error_description="certificate-bound token"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
			if strings.Contains(w.Body.String(), text) {
				t.Error("the denial holds the token")
			}
		})
	}
	ctx := context.Background()
	size, err := e.log.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last, _, err := e.log.Record(ctx, size-2) // the denial before the allowed request
	if err != nil {
		t.Fatal(err)
	}
	if last.Decision != audit.Deny || last.Reason != gateway.ReasonProofInvalid || last.TokenID != tok.ID || last.Status != 401 {
		t.Errorf("audit record of a refusal: %+v", last)
	}
}

// TestDPoPBoundStillRefused: a DPoP-bound token is refused as before
// (proof_invalid), even over TLS with a client certificate.
func TestDPoPBoundStillRefused(t *testing.T) {
	e, h := newEnvWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	c := clientCert(t)
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}, Bind: access.BindDPoP, Thumbprint: gateway.Thumbprint(c.Raw)})
	r := httptest.NewRequest("GET", "/billing/v1/x", nil)
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: []*x509.Certificate{c}}
	r.Header.Set("Authorization", "Bearer "+text)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 401 || !strings.Contains(w.Body.String(), `"proof_invalid"`) || e.hits.Load() != 0 {
		t.Fatalf("got %d %s, want 401 proof_invalid", w.Code, w.Body)
	}
}

// TestMTLSFailureBudget: refused certificate-bound requests count against
// the source's failure budget, so a stolen bound token cannot be replayed
// without limit.
func TestMTLSFailureBudget(t *testing.T) {
	e, h := newEnvWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(c *gateway.Config) {
		c.FailureRate, c.FailureBurst = 0.001, 3
	})
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}, Bind: access.BindMTLS, Thumbprint: gateway.Thumbprint(clientCert(t).Raw)})
	var codes []int
	for range 5 {
		r := httptest.NewRequest("GET", "/billing/v1/x", nil)
		r.RemoteAddr = "192.0.2.9:1234"
		r.Header.Set("Authorization", "Bearer "+text)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		codes = append(codes, w.Code)
	}
	if codes[0] != 401 || codes[4] != 429 {
		t.Fatalf("statuses %v: want 401s, then 429 once the budget is spent", codes)
	}
}
