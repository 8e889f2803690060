package cli

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The tests below check the proofs "call" sends with a verifier written
// here from RFC 9449, independent of the gateway's.

const testToken = "lk_testtokentesttokentesttoken"

// runCLI runs the command line and returns stdout, stderr and the exit
// status.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), ExitCode(err)
}

// newKey runs "key new" and returns the key file and the printed
// thumbprint.
func newKey(t *testing.T, alg string) (string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "dpop.key")
	out, errOut, code := runCLI(t, "key", "new", "--out", file, "--alg", alg)
	if code != 0 {
		t.Fatalf("key new: %d %s", code, errOut)
	}
	return file, strings.TrimSpace(out)
}

// dpopClaims are the claims of a proof, as the verifier reads them.
type dpopClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath"`
	Nonce string `json:"nonce"`
}

// verifyProof checks r's DPoP proof per RFC 9449 section 4.3 and returns
// its claims and the thumbprint of its key.
func verifyProof(r *http.Request, wantHTU string) (dpopClaims, string, error) {
	var c dpopClaims
	if n := len(r.Header.Values("DPoP")); n != 1 {
		return c, "", fmt.Errorf("%d DPoP headers", n)
	}
	raw := r.Header.Get("DPoP")
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme != "DPoP" || tok != testToken {
		return c, "", fmt.Errorf("Authorization %q, want DPoP TOKEN", r.Header.Get("Authorization"))
	}
	// The raw header: typ, alg, and a jwk without private members.
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return c, "", fmt.Errorf("not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return c, "", err
	}
	var hdr struct {
		Typ string         `json:"typ"`
		Alg string         `json:"alg"`
		JWK map[string]any `json:"jwk"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return c, "", err
	}
	if hdr.Typ != "dpop+jwt" {
		return c, "", fmt.Errorf("typ %q", hdr.Typ)
	}
	if hdr.Alg != "ES256" && hdr.Alg != "EdDSA" {
		return c, "", fmt.Errorf("alg %q", hdr.Alg)
	}
	if _, ok := hdr.JWK["d"]; ok || hdr.JWK == nil {
		return c, "", fmt.Errorf("jwk %v: want a public key", hdr.JWK)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
	if err != nil {
		return c, "", err
	}
	jwk := jws.Signatures[0].Protected.JSONWebKey
	if jwk == nil || !jwk.IsPublic() {
		return c, "", fmt.Errorf("no public jwk")
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return c, "", fmt.Errorf("signature: %w", err)
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, "", err
	}
	sum := sha256.Sum256([]byte(testToken))
	switch {
	case c.JTI == "":
		return c, "", fmt.Errorf("no jti")
	case c.HTM != r.Method:
		return c, "", fmt.Errorf("htm %q, method %q", c.HTM, r.Method)
	case c.HTU != wantHTU:
		return c, "", fmt.Errorf("htu %q, want %q", c.HTU, wantHTU)
	case time.Since(time.Unix(c.IAT, 0)).Abs() > time.Minute:
		return c, "", fmt.Errorf("iat %d is not now", c.IAT)
	case c.ATH != base64.RawURLEncoding.EncodeToString(sum[:]):
		return c, "", fmt.Errorf("ath %q", c.ATH)
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return c, "", err
	}
	return c, base64.RawURLEncoding.EncodeToString(tp), nil
}

// proofServer answers 200 with "ok METHOD BODY" to requests whose proof
// verifies, and 401 otherwise. With nonce set, a proof without that nonce
// gets the use_dpop_nonce challenge.
type proofServer struct {
	*httptest.Server
	nonce string
	mu    sync.Mutex
	jtis  map[string]bool
	jkts  []string
	hits  int
	errs  []error
}

func newProofServer(t *testing.T, nonce string) *proofServer {
	s := &proofServer{nonce: nonce, jtis: map[string]bool{}}
	// Start after s.Server is set: the handler reads s.URL.
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// seen returns what the server saw so far: the verification errors, the
// thumbprints of the proof keys, the number of distinct jtis and of
// requests.
func (s *proofServer) seen() (errs []error, jkts []string, jtis, hits int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errs), slices.Clone(s.jkts), len(s.jtis), s.hits
}

func (s *proofServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits++
	c, jkt, err := verifyProof(r, s.URL+r.URL.Path)
	if err == nil && s.jtis[c.JTI] {
		err = fmt.Errorf("jti %q replayed", c.JTI)
	}
	if err != nil {
		s.errs = append(s.errs, err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"proof_invalid","message":%q}`, err.Error())
		return
	}
	s.jtis[c.JTI] = true
	s.jkts = append(s.jkts, jkt)
	if s.nonce != "" && c.Nonce != s.nonce {
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
		w.Header().Set("DPoP-Nonce", s.nonce)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"use_dpop_nonce","message":"send a nonce"}`)
		return
	}
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "ok %s %s", r.Method, b)
}

func TestCallDPoP(t *testing.T) {
	t.Setenv(envContractorToken, testToken)
	for _, alg := range []string{"ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			key, jkt := newKey(t, alg)
			srv := newProofServer(t, "")
			out, errOut, code := runCLI(t, "call", "GET", srv.URL+"/billing/v1/invoices?limit=1#top", "--key", key, "-H", "X-Trace: 1")
			if code != 0 || out != "ok GET " || errOut != "" {
				t.Fatalf("call GET: %d %q %q", code, out, errOut)
			}
			out, _, code = runCLI(t, "call", "post", srv.URL+"/billing/v1/invoices", "--key", key, "-d", `{"a":1}`)
			if code != 0 || out != `ok POST {"a":1}` {
				t.Fatalf("call POST: %d %q", code, out)
			}
			errs, jkts, jtis, _ := srv.seen()
			if jtis != 2 || len(errs) != 0 {
				t.Errorf("%d jtis, errors %v: want 2 distinct, none", jtis, errs)
			}
			for _, got := range jkts {
				if got != jkt {
					t.Errorf("proof key thumbprint %s, key new printed %s", got, jkt)
				}
			}
			if tp, _, _ := runCLI(t, "key", "thumbprint", key); strings.TrimSpace(tp) != jkt {
				t.Errorf("key thumbprint %q, key new %q", tp, jkt)
			}
		})
	}
}

func TestCallNonce(t *testing.T) {
	t.Setenv(envContractorToken, testToken)
	key, _ := newKey(t, "ES256")
	srv := newProofServer(t, "n-0123")
	body := filepath.Join(t.TempDir(), "body")
	os.WriteFile(body, []byte("payload"), 0o600)
	out, errOut, code := runCLI(t, "call", "PUT", srv.URL+"/s/x", "--key", key, "--data-file", body)
	errs, _, jtis, hits := srv.seen()
	if code != 0 || out != "ok PUT payload" || errOut != "" {
		t.Fatalf("call: %d %q %q %v", code, out, errOut, errs)
	}
	if hits != 2 || jtis != 2 || len(errs) != 0 {
		t.Errorf("%d requests, %d jtis, errors %v: want 2, 2, none", hits, jtis, errs)
	}
}

func TestCallNonceRetriedOnce(t *testing.T) {
	t.Setenv(envContractorToken, testToken)
	key, _ := newKey(t, "ES256")
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
		w.Header().Set("DPoP-Nonce", fmt.Sprint("n", hits.Load()))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	_, errOut, code := runCLI(t, "call", "GET", srv.URL+"/s/x", "--key", key)
	if code != 1 || hits.Load() != 2 || errOut != "latchkey: HTTP 401 Unauthorized (use_dpop_nonce)\n" {
		t.Errorf("call: exit %d after %d requests, stderr %q", code, hits.Load(), errOut)
	}
}

// recorder answers with status, header and body, and keeps the last
// request.
func recorder(t *testing.T, status int, header map[string]string, body string) (*httptest.Server, *atomic.Pointer[http.Request]) {
	var last atomic.Pointer[http.Request]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last.Store(r)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &last
}

func TestCallBearer(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte(testToken+"\n"), 0o600)
	srv, last := recorder(t, 200, map[string]string{"X-Up": "1"}, "hello")
	out, _, code := runCLI(t, "call", "GET", srv.URL+"/s/x", "--token-file", tokFile, "-i")
	if code != 0 || !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.Contains(out, "\r\nX-Up: 1\r\n") || !strings.HasSuffix(out, "\r\n\r\nhello") {
		t.Errorf("call -i: %d %q", code, out)
	}
	r := last.Load()
	if r.Header.Get("Authorization") != "Bearer "+testToken || r.Header.Get("DPoP") != "" {
		t.Errorf("Authorization %q, DPoP %q: want bearer, no proof", r.Header.Get("Authorization"), r.Header.Get("DPoP"))
	}
}

func TestCallStatus(t *testing.T) {
	t.Setenv(envContractorToken, testToken)
	tests := []struct {
		name    string
		status  int
		header  map[string]string
		body    string
		wantErr string
	}{
		{"denial", 403, map[string]string{"Content-Type": "application/json"},
			`{"error":"scope_denied","message":"scope billing:GET:/v1/x is not granted"}`,
			"latchkey: HTTP 403 Forbidden: scope billing:GET:/v1/x is not granted (scope_denied)\n"},
		{"proof refused", 401, map[string]string{"WWW-Authenticate": `DPoP error="invalid_dpop_proof", error_description="bad htu"`},
			"", "latchkey: HTTP 401 Unauthorized: bad htu (invalid_dpop_proof)\n"},
		{"upstream error", 502, nil, "upstream\nbroke", "latchkey: HTTP 502 Bad Gateway\n"},
		{"redirect", 302, map[string]string{"Location": "https://elsewhere.example/x"}, "moved",
			"latchkey: HTTP 302 Found: redirect to https://elsewhere.example/x not followed (a proof is bound to one URL)\n"},
	}
	for _, tt := range tests {
		srv, _ := recorder(t, tt.status, tt.header, tt.body)
		out, errOut, code := runCLI(t, "call", "GET", srv.URL+"/s/x")
		if code != 1 || errOut != tt.wantErr || out != tt.body {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1, %q, %q", tt.name, code, out, errOut, tt.body, tt.wantErr)
		}
	}
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string, der []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile, der
}

func TestCallMTLS(t *testing.T) {
	t.Setenv(envContractorToken, testToken)
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir, "client")
	var presented atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		presented.Store(base64.RawURLEncoding.EncodeToString(sum[:]))
		io.WriteString(w, "mtls ok")
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(dir, "gateway.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	x5t, _, _ := runCLI(t, "key", "thumbprint", "--cert", certFile)
	out, errOut, code := runCLI(t, "call", "GET", srv.URL+"/s/x", "--cert", certFile, "--cert-key", keyFile, "--cacert", ca)
	if code != 0 || out != "mtls ok" {
		t.Fatalf("call --cert: %d %q %q", code, out, errOut)
	}
	if got := presented.Load(); got != strings.TrimSpace(x5t) {
		t.Errorf("presented certificate %v, key thumbprint --cert printed %q", got, x5t)
	}

	// A pinned development gateway: the right pin connects, another not.
	pin, _, _ := runCLI(t, "key", "thumbprint", "--cert", ca)
	out, errOut, code = runCLI(t, "call", "GET", srv.URL+"/s/x", "--cert", certFile, "--cert-key", keyFile, "--insecure-dev-pin", strings.TrimSpace(pin))
	if code != 0 || out != "mtls ok" {
		t.Errorf("call --insecure-dev-pin: %d %q %q", code, out, errOut)
	}
	_, errOut, code = runCLI(t, "call", "GET", srv.URL+"/s/x", "--insecure-dev-pin", strings.Repeat("ab", 32))
	if code != 1 || !strings.Contains(errOut, "does not match --insecure-dev-pin") {
		t.Errorf("call with a wrong pin: %d %q", code, errOut)
	}
	// Without --cacert the test certificate is not trusted.
	if _, errOut, code = runCLI(t, "call", "GET", srv.URL+"/s/x"); code != 1 {
		t.Errorf("call to an untrusted gateway: %d %q", code, errOut)
	}
}

func TestCallRefusals(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	dir := t.TempDir()
	key, _ := newKey(t, "ES256")
	loose := filepath.Join(dir, "loose.key")
	b, _ := os.ReadFile(key)
	os.WriteFile(loose, b, 0o644)
	garbage := filepath.Join(dir, "garbage.key")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	certFile, _, _ := writeCert(t, dir, "c")
	u := srv.URL + "/s/x"
	tests := []struct {
		name    string
		token   string
		args    []string
		code    int
		wantErr string
	}{
		{"no token", "", []string{"GET", u}, 2, "no token: set LATCHKEY_CONTRACTOR_TOKEN or pass --token-file FILE"},
		{"token flag", testToken, []string{"GET", u, "--token", testToken}, 2, "call does not take --token"},
		{"token with a space", "lk_a b", []string{"GET", u}, 2, "the token contains white space"},
		{"missing token file", "", []string{"GET", u, "--token-file", filepath.Join(dir, "nope")}, 2, "--token-file: "},
		{"one arg", testToken, []string{"GET"}, 2, "accepts 2 arg(s), received 1"},
		{"bad method", testToken, []string{"G T", u}, 2, `invalid METHOD "G T"`},
		{"bad URL", testToken, []string{"GET", "::nope"}, 2, `invalid URL "::nope"`},
		{"relative URL", testToken, []string{"GET", "/s/x"}, 2, `invalid URL "/s/x"`},
		{"ftp URL", testToken, []string{"GET", "ftp://127.0.0.1/x"}, 2, "want an http or https URL"},
		{"plain http", testToken, []string{"GET", "http://gateway.example/x"}, 2, "refusing to send a token over plain http to gateway.example: use https"},
		{"user in URL", testToken, []string{"GET", "https://u:p@gateway.example/x"}, 2, "credentials in the URL"},
		{"header without colon", testToken, []string{"GET", u, "-H", "X-A b"}, 2, `-H "X-A b": want 'Name: value'`},
		{"bad header name", testToken, []string{"GET", u, "-H", "X A: b"}, 2, `want 'Name: value'`},
		{"authorization header", testToken, []string{"GET", u, "-H", "authorization: Bearer x"}, 2, "-H Authorization: call sets this header itself"},
		{"dpop header", testToken, []string{"GET", u, "-H", "DPoP: x"}, 2, "-H Dpop: call sets this header itself"},
		{"two bodies", testToken, []string{"POST", u, "-d", "x", "--data-file", key}, 2, "-d and --data-file exclude each other"},
		{"missing data file", testToken, []string{"POST", u, "--data-file", filepath.Join(dir, "nope")}, 2, "--data-file: "},
		{"cert without key", testToken, []string{"GET", u, "--cert", certFile}, 2, "--cert and --cert-key go together"},
		{"cacert and pin", testToken, []string{"GET", u, "--cacert", certFile, "--insecure-dev-pin", "x"}, 2, "exclude each other"},
		{"bad pin", testToken, []string{"GET", u, "--insecure-dev-pin", "abc"}, 2, "--insecure-dev-pin: want the SHA-256"},
		{"missing key", testToken, []string{"GET", u, "--key", filepath.Join(dir, "nope.key")}, 1, "does not exist (make one with 'latchkey key new')"},
		{"loose key", testToken, []string{"GET", u, "--key", loose}, 1, "is accessible by others (mode 0644): run chmod 600"},
		{"garbage key", testToken, []string{"GET", u, "--key", garbage}, 1, "not a PEM PKCS#8 P-256 or Ed25519 private key"},
		{"key is a directory", testToken, []string{"GET", u, "--key", dir}, 1, "is not a regular file"},
	}
	for _, tt := range tests {
		t.Setenv(envContractorToken, tt.token)
		out, errOut, code := runCLI(t, append([]string{"call"}, tt.args...)...)
		if code != tt.code || out != "" || !strings.HasPrefix(errOut, "latchkey: ") ||
			strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.wantErr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d and %q", tt.name, code, out, errOut, tt.code, tt.wantErr)
		}
		if strings.Contains(errOut, testToken) {
			t.Errorf("%s: the token is echoed: %q", tt.name, errOut)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached the server; refusals must send none", n)
	}
}
