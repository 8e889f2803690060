package server

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/certtest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths and a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c, k := certtest.PEM(t, "latchkey test")
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, []byte(c), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c))
	return certFile, keyFile, pool
}

// TestServeGatewayTLS: with a certificate the gateway serves HTTPS and
// speaks HTTP/2; without one, plain HTTP (HTTP/1.1 and prior-knowledge
// HTTP/2) is refused off loopback.
func TestServeGatewayTLS(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Header.Get("X-Key")) }))
	defer up.Close()
	dir := newDir(t)
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	cfg := testConfig(dir, &syncBuffer{})
	cfg.GatewayTLSCert, cfg.GatewayTLSKey = certFile, keyFile
	r := start(t, cfg)
	ctx := t.Context()
	gw, iss := onboard(t, r, adminapi.NewService{Name: "billing", Upstream: up.URL,
		CredentialHeaders: []access.Header{{Name: "X-Key", Value: "k-upstream"}}}, "billing:read:/**", "billing:GET:/**")
	if !strings.HasPrefix(gw, "https://") {
		t.Fatalf("gateway.url %q, want https", gw)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, "GET", gw+"/billing/x", nil)
	req.Header.Set("Authorization", "Bearer "+iss.Token)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(body) != "k-upstream" {
		t.Fatalf("got %s %d %q, want HTTP/2 200 with the upstream's answer", resp.Proto, resp.StatusCode, body)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	cfg = testConfig(newDir(t), io.Discard)
	cfg.GatewayAddr = "0.0.0.0:0"
	err = Run(t.Context(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "refusing to serve the gateway over plain HTTP on 0.0.0.0:0") {
		t.Fatalf("plain gateway off loopback: %v, want a refusal", err)
	}
	cfg.GatewayTLSCert = certFile
	if err := Run(t.Context(), cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "give both --gateway-tls-cert and --gateway-tls-key") {
		t.Fatalf("cert without key: %v", err)
	}
}
