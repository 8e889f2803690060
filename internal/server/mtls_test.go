package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
)

// newClientCert makes a self-signed client certificate, as a contractor
// would with openssl, and returns it with its x5t#S256 thumbprint.
func newClientCert(t *testing.T, name string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, base64.RawURLEncoding.EncodeToString(sum[:])
}

// gwClient is an HTTPS client of the gateway trusting pool, presenting
// cert if it has one; h2 selects HTTP/2.
func gwClient(t *testing.T, pool *x509.CertPool, cert *tls.Certificate, h2 bool) *http.Client {
	tc := &tls.Config{RootCAs: pool}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: h2}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// gwGet sends GET url with the token as a Bearer token and returns the
// status, the body and the WWW-Authenticate header.
func gwGet(t *testing.T, c *http.Client, url, tok string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("WWW-Authenticate")
}

// TestServeMTLSBoundToken: through serve's real TLS gateway on 127.0.0.1,
// a token bound to a self-signed client certificate reaches the upstream
// (with the service's credential) only over a connection presenting that
// certificate, over HTTP/1.1 and HTTP/2. Stolen, it is refused 401
// proof_invalid without a certificate, with another one, and over the
// plain loopback listener (HTTP/1.1 and prior-knowledge HTTP/2), and the
// upstream is never reached; the refusals are audited. A bearer token
// still works over TLS without a client certificate.
func TestServeMTLSBoundToken(t *testing.T) {
	var hits atomic.Int64
	var lastKey atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		lastKey.Store(r.Header.Get("X-Key") + "|" + r.Header.Get("Authorization"))
		io.WriteString(w, "upstream ok")
	}))
	defer up.Close()
	dir := newDir(t)
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	cfg := testConfig(dir, &syncBuffer{})
	cfg.GatewayTLSCert, cfg.GatewayTLSKey = certFile, keyFile
	r := start(t, cfg)
	ctx := t.Context()
	gw, bearer := onboard(t, r, adminapi.NewService{Name: "billing", Upstream: up.URL,
		CredentialHeaders: []access.Header{{Name: "X-Key", Value: "k-upstream"}}}, "billing:read:/**", "billing:GET:/**")
	cl := &adminapi.Client{Addr: r.url, Token: adminToken(t, r.stdout.String())}
	mine, x5t := newClientCert(t, "alice")
	other, _ := newClientCert(t, "mallory")
	bound, err := cl.IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{"billing:GET:/**"}, TTL: "1h", Bind: "mtls", X5T: x5t})
	if err != nil {
		t.Fatal(err)
	}

	// The bearer token needs no client certificate.
	if status, body, _ := gwGet(t, gwClient(t, pool, nil, true), gw+"/billing/a", bearer.Token); status != 200 || body != "upstream ok" {
		t.Fatalf("bearer token over TLS without a client certificate: %d %s", status, body)
	}
	// The bound token, with its certificate.
	for _, h2 := range []bool{false, true} {
		before := hits.Load()
		if status, body, _ := gwGet(t, gwClient(t, pool, &mine, h2), gw+"/billing/a", bound.Token); status != 200 || body != "upstream ok" || hits.Load() != before+1 {
			t.Fatalf("bound token with its certificate (h2 %v): %d %s", h2, status, body)
		}
		if got := lastKey.Load(); got != "k-upstream|" {
			t.Fatalf("upstream saw X-Key|Authorization %q, want the credential and no token", got)
		}
	}
	// Stolen: without the certificate, or with another one.
	denied := func(what string, c *http.Client, url string) {
		t.Helper()
		before := hits.Load()
		status, body, challenge := gwGet(t, c, url, bound.Token)
		if status != 401 || !strings.Contains(body, `"error":"proof_invalid"`) || hits.Load() != before {
			t.Errorf("%s: %d %s (upstream reached %d times), want 401 proof_invalid, not forwarded", what, status, body, hits.Load()-before)
		}
		if challenge != `Bearer realm="latchkey", error="invalid_token", error_description="certificate-bound token"` {
			t.Errorf("%s: WWW-Authenticate %q", what, challenge)
		}
	}
	denied("no client certificate", gwClient(t, pool, nil, true), gw+"/billing/a")
	denied("another client certificate", gwClient(t, pool, &other, true), gw+"/billing/a")
	denied("another client certificate, HTTP/1.1", gwClient(t, pool, &other, false), gw+"/billing/a")
	poll(t, func() string {
		page, err := cl.AuditSearch(ctx, adminapi.AuditQuery{Token: bound.ID, Decision: "deny"})
		if err != nil {
			return err.Error()
		}
		n := 0
		for _, rec := range page.Records {
			if rec.Reason == "proof_invalid" && rec.Status == 401 {
				n++
			}
		}
		if n != 3 {
			return fmt.Sprintf("%d proof_invalid audit records, want 3", n)
		}
		return ""
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// Over the plain loopback listener (as behind a TLS-terminating
	// proxy) there is no certificate, whatever headers claim one.
	cfg.GatewayTLSCert, cfg.GatewayTLSKey = "", ""
	r = start(t, cfg)
	b, err := os.ReadFile(filepath.Join(dir, gatewayFile))
	if err != nil {
		t.Fatal(err)
	}
	plain := strings.TrimSpace(string(b))
	if !strings.HasPrefix(plain, "http://") {
		t.Fatalf("gateway.url %q, want http", plain)
	}
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	denied("plain HTTP/1.1", &http.Client{Timeout: 10 * time.Second}, plain+"/billing/a")
	denied("plain HTTP/2 (prior knowledge)", &http.Client{Transport: h2c, Timeout: 10 * time.Second}, plain+"/billing/a")
	req, _ := http.NewRequestWithContext(ctx, "GET", plain+"/billing/a", nil)
	req.Header.Set("Authorization", "Bearer "+bound.Token)
	req.Header.Set("X-Forwarded-Client-Cert", "Hash="+x5t)
	req.Header.Set("X-SSL-Client-Cert", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("plain HTTP with client-certificate headers: %d, want 401", resp.StatusCode)
	}
	if status, _, _ := gwGet(t, http.DefaultClient, plain+"/billing/a", bearer.Token); status != 200 {
		t.Errorf("bearer token over plain loopback: %d", status)
	}
}

// TestServeGatewayClientCA: with --gateway-client-ca, a token bound to a
// certificate the CA issued works with that certificate; a certificate
// that does not chain to the CA fails the handshake; clients without a
// certificate still connect (bearer tokens).
func TestServeGatewayClientCA(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	dir := newDir(t)
	tmp := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, tmp)
	ca, caKey := newCA(t)
	caFile := filepath.Join(tmp, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir, &syncBuffer{})
	cfg.GatewayTLSCert, cfg.GatewayTLSKey, cfg.GatewayClientCA = certFile, keyFile, caFile
	r := start(t, cfg)
	gw, bearer := onboard(t, r, adminapi.NewService{Name: "billing", Upstream: up.URL}, "billing:read:/**", "billing:GET:/**")
	if status, _, _ := gwGet(t, gwClient(t, pool, nil, true), gw+"/billing/a", bearer.Token); status != 200 {
		t.Fatalf("no client certificate: %d", status)
	}
	// PKI binding: a certificate the CA issued, and a token bound to it.
	issued, x5t := caIssued(t, ca, caKey)
	cl := &adminapi.Client{Addr: r.url, Token: adminToken(t, r.stdout.String())}
	bound, err := cl.IssueToken(t.Context(), adminapi.NewToken{Contractor: "alice", Scopes: []string{"billing:GET:/**"}, TTL: "1h", Bind: "mtls", X5T: x5t})
	if err != nil {
		t.Fatal(err)
	}
	if status, body, _ := gwGet(t, gwClient(t, pool, &issued, true), gw+"/billing/a", bound.Token); status != 200 {
		t.Fatalf("bound token with a certificate of the client CA: %d %s", status, body)
	}
	// Go's client would not offer a certificate the server's CA list does
	// not name; this one insists, as other clients may.
	stranger, _ := newClientCert(t, "stranger")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil }}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", gw+"/billing/a", nil)
	req.Header.Set("Authorization", "Bearer "+bearer.Token)
	if resp, err := (&http.Client{Transport: tr}).Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate outside the client CA: %d, want a failed handshake", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("handshake error %v, want one about the certificate", err)
	}

	cfg = testConfig(newDir(t), io.Discard)
	cfg.GatewayClientCA = caFile
	if err := Run(t.Context(), cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "--gateway-client-ca needs TLS") {
		t.Fatalf("client CA without TLS: %v", err)
	}
}

// TestServeGatewayDevCert: --gateway-tls-dev creates a self-signed
// certificate in the data directory (files 0600), prints its fingerprint,
// serves the gateway with it, and reuses it on the next start.
func TestServeGatewayDevCert(t *testing.T) {
	dir := newDir(t)
	cfg := testConfig(dir, &syncBuffer{})
	cfg.GatewayTLSDev = true
	r := start(t, cfg)
	out := r.stdout.String()
	if !strings.Contains(out, "(created,") {
		t.Errorf("first start does not say it created the certificate:\n%s", out)
	}
	fp := fingerprintLine(t, out)
	for _, f := range []string{devCertFile, devKeyFile} {
		if p := perm(t, filepath.Join(dir, f)); p != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, p)
		}
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, devCertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("gateway-dev.crt holds no certificate")
	}
	gw := gatewayURL(t, dir)
	if !strings.HasPrefix(gw, "https://127.0.0.1:") {
		t.Fatalf("gateway.url %q", gw)
	}
	// The certificate served is the one in the file (verified by the
	// pool), and its fingerprint is the one printed.
	resp, err := gwClient(t, pool, nil, true).Get(gw + "/billing/a")
	if err != nil {
		t.Fatalf("TLS with the dev certificate trusted: %v", err)
	}
	resp.Body.Close()
	if got := colonHex(resp.TLS.PeerCertificates[0].Raw); got != fp {
		t.Errorf("served certificate %s, printed %s", got, fp)
	}
	if resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want 1.3", resp.TLS.Version)
	}
	leaf := resp.TLS.PeerCertificates[0]
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("dev certificate: %v", err)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	r = start(t, cfg)
	if out := r.stdout.String(); !strings.Contains(out, "(reused,") || fingerprintLine(t, out) != fp {
		t.Errorf("second start did not reuse the certificate %s:\n%s", fp, out)
	}
	after, _ := os.ReadFile(filepath.Join(dir, devCertFile))
	if string(after) != string(certPEM) {
		t.Error("gateway-dev.crt was rewritten on restart")
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// A key file others can read is refused; so is a dev certificate
	// together with certificate files.
	if err := os.Chmod(filepath.Join(dir, devKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Run(t.Context(), cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("readable dev key: %v", err)
	}
	cfg.GatewayTLSCert, cfg.GatewayTLSKey = "c.pem", "k.pem"
	if err := Run(t.Context(), cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("dev and files: %v", err)
	}
}

// TestDevCertificateRenewal: a stored development certificate that does
// not name the listen host, or is about to end, is replaced.
func TestDevCertificateRenewal(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	d1, err := devCertificate(dir, "127.0.0.1:0", now)
	if err != nil || !d1.created {
		t.Fatalf("first: created %v, %v", d1.created, err)
	}
	d2, err := devCertificate(dir, "localhost:7380", now.Add(24*time.Hour))
	if err != nil || d2.created || d2.fingerprint() != d1.fingerprint() {
		t.Fatalf("same hosts a day later: created %v, %v", d2.created, err)
	}
	d3, err := devCertificate(dir, "gw.example.test:7380", now)
	if err != nil || !d3.created || d3.cert.Leaf.VerifyHostname("gw.example.test") != nil {
		t.Fatalf("new host: created %v, %v", d3.created, err)
	}
	d4, err := devCertificate(dir, "gw.example.test:7380", now.Add(devCertLifetime-devCertRenew+time.Hour))
	if err != nil || !d4.created {
		t.Fatalf("near its end: created %v, %v", d4.created, err)
	}
	if got := devHosts("0.0.0.0:7380"); strings.Join(got, " ") != "localhost 127.0.0.1 ::1" {
		t.Errorf("devHosts(0.0.0.0) = %v", got)
	}
	if got := devHosts("[::1]:7380"); len(got) != 3 {
		t.Errorf("devHosts([::1]) = %v", got)
	}
}

// fingerprintLine returns the fingerprint serve printed.
func fingerprintLine(t *testing.T, out string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "gateway certificate SHA-256 fingerprint ")
	if !ok {
		t.Fatalf("no fingerprint printed:\n%s", out)
	}
	fp, _, _ := strings.Cut(rest, "\n")
	return fp
}

func colonHex(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, c := range sum {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

func gatewayURL(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, gatewayFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// newCA makes a CA certificate and key for client certificates.
func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "contractor CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// caIssued makes a client certificate signed by ca, and returns it with
// its thumbprint.
func caIssued(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(11), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, base64.RawURLEncoding.EncodeToString(sum[:])
}
