package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"latchkey/internal/access"
	"latchkey/internal/certtest"
	"latchkey/internal/gateway"
	"latchkey/internal/kube"
)

// kubeEnv adds to an env a kubernetes service "prod": a TLS upstream
// (serving up, recording each request like the env's upstream) registered
// with its CA and the gateway's token "gw-secret", or, when clientCert is
// set, a client certificate that the upstream requires. alice is granted
// get, list and watch of pods in namespace dev.
func kubeEnv(t *testing.T, up http.Handler, clientCert bool, opts ...func(*gateway.Config)) *env {
	t.Helper()
	e, _ := newEnvWith(t, http.NotFoundHandler(), opts...)
	upSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		e.last.Store(&seen{uri: r.RequestURI, header: r.Header.Clone()})
		if clientCert && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "latchkey-gateway") {
			http.Error(w, "no gateway certificate", http.StatusUnauthorized)
			return
		}
		up.ServeHTTP(w, r)
	}))
	if clientCert {
		upSrv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	}
	upSrv.StartTLS()
	t.Cleanup(upSrv.Close)
	cred := access.KubernetesCredential{
		CA: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: upSrv.Certificate().Raw})),
	}
	if clientCert {
		cred.ClientCert, cred.ClientKey = certtest.PEM(t, "latchkey-gateway")
	} else {
		cred.Token = "gw-secret"
	}
	ctx := context.Background()
	if _, err := e.a.AddKubernetesService(ctx, root, "prod", upSrv.URL, cred); err != nil {
		t.Fatal(err)
	}
	scopes, err := kube.Scopes("prod", kube.Rule{Namespace: "dev", Verbs: []string{"get", "list", "watch"},
		Resources: []kube.Resource{{Name: "pods"}, {Name: "pods", Subresource: "log"}}})
	if err != nil {
		t.Fatal(err)
	}
	scopes = append(scopes, "prod:GET,POST:/api/v1/namespaces/dev/pods/*/exec")
	if _, err := e.a.AddGrant(ctx, root, "alice", scopes, e.clock.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return e
}

var podList = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","items":[]}`)
})

// TestKubeImpersonation checks what the API server receives: the
// gateway's own credential, the contractor as Impersonate-User and
// latchkey:contractors as Impersonate-Group, and none of the client's
// impersonation headers nor its token.
func TestKubeImpersonation(t *testing.T) {
	t.Parallel()
	e := kubeEnv(t, podList, false)
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"prod:GET:/api/v1/namespaces/dev/pods"}})
	r := e.send(t, "GET", "/prod/api/v1/namespaces/dev/pods?watch=0", "Bearer "+text,
		"Impersonate-User: system:admin", "Impersonate-Group: system:masters", "impersonate-group: system:nodes",
		"Impersonate-Uid: 0", "Impersonate-Extra-Scopes: all", "IMPERSONATE-EXTRA-reason: x",
		"X-Remote-User: system:admin", "x-remote-group: system:masters", "X-Remote-Extra-Scopes: all")
	if r.status != 200 || !strings.Contains(r.body, "PodList") {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	s := e.last.Load()
	if s.uri != "/api/v1/namespaces/dev/pods?watch=0" {
		t.Errorf("upstream request-target %q", s.uri)
	}
	if got := s.header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer gw-secret" {
		t.Errorf("upstream Authorization %q, want the gateway's own token only", got)
	}
	var imp []string
	for k, vs := range s.header {
		if strings.HasPrefix(strings.ToLower(k), "x-remote-") {
			t.Errorf("front-proxy header %s: %q reached the API server", k, vs)
		}
		if strings.HasPrefix(strings.ToLower(k), "impersonate-") {
			for _, v := range vs {
				imp = append(imp, k+": "+v)
			}
		}
		if strings.Contains(strings.Join(vs, " "), text) {
			t.Errorf("contractor token reached the upstream in %s", k)
		}
	}
	want := map[string]bool{"Impersonate-User: latchkey:alice": true, "Impersonate-Group: latchkey:contractors": true}
	if len(imp) != 2 || !want[imp[0]] || !want[imp[1]] {
		t.Errorf("upstream impersonation headers %q, want only %v", imp, want)
	}
}

// TestKubeClientCertificate checks a service whose gateway credential is a
// client certificate: the API server sees it, and no Authorization header.
func TestKubeClientCertificate(t *testing.T) {
	t.Parallel()
	e := kubeEnv(t, podList, true)
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"prod:GET:/api/v1/namespaces/dev/pods"}})
	r := e.send(t, "GET", "/prod/api/v1/namespaces/dev/pods", "Bearer "+text)
	if r.status != 200 {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	if got := e.last.Load().header.Values("Authorization"); len(got) != 0 {
		t.Errorf("upstream Authorization %q, want none", got)
	}
}

// kubeStatus decodes a Status denial.
func kubeStatus(t *testing.T, r reply) kube.Status {
	t.Helper()
	var st kube.Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || st.Kind != "Status" {
		t.Fatalf("body %q is not a Status: %v", r.body, err)
	}
	return st
}

// TestKubeDenials checks that every denial on a kubernetes service is a
// Status with the HTTP status's Kubernetes reason and the contract's
// reason word in its message, and is audited like any other.
func TestKubeDenials(t *testing.T) {
	t.Parallel()
	e := kubeEnv(t, podList, false, func(c *gateway.Config) { c.TokenRate, c.TokenBurst = rate.Every(time.Hour), 1 })
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"prod:GET:/api/v1/namespaces/dev/pods"}})
	limited, _ := e.issue(t, access.IssueRequest{Scopes: []string{"prod:GET:/api/v1/namespaces/dev/pods"}})
	if r := e.send(t, "GET", "/prod/api/v1/namespaces/dev/pods", "Bearer "+limited); r.status != 200 {
		t.Fatalf("first request of the limited token: %d", r.status)
	}
	revoked, rt := e.issue(t, access.IssueRequest{Scopes: []string{"prod:GET:/api/v1/namespaces/dev/pods"}})
	if err := e.a.Revoke(context.Background(), root, rt.ID); err != nil {
		t.Fatal(err)
	}
	other, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/x"}})
	tests := []struct {
		name, method, target, auth string
		code                       int
		reason, kreason            string
	}{
		{"no token", "GET", "/prod/api/v1/namespaces/dev/pods", "", 401, "token_missing", "Unauthorized"},
		{"malformed token", "GET", "/prod/api/v1/namespaces/dev/pods", "Bearer lk_nope", 401, "token_malformed", "Unauthorized"},
		{"revoked token", "GET", "/prod/api/v1/namespaces/dev/pods", "Bearer " + revoked, 401, "token_revoked", "Unauthorized"},
		{"secrets of another namespace", "GET", "/prod/api/v1/namespaces/kube-system/secrets", "Bearer " + text, 403, "scope_denied", "Forbidden"},
		{"delete of an allowed path", "DELETE", "/prod/api/v1/namespaces/dev/pods", "Bearer " + text, 403, "scope_denied", "Forbidden"},
		{"a namespace list is no discovery", "GET", "/prod/api/v1/namespaces", "Bearer " + text, 403, "scope_denied", "Forbidden"},
		{"discovery written to", "POST", "/prod/apis", "Bearer " + text, 403, "scope_denied", "Forbidden"},
		{"discovery without a scope on the service", "GET", "/prod/api", "Bearer " + other, 403, "scope_denied", "Forbidden"},
		{"dot segment", "GET", "/prod/api/v1/namespaces/dev/pods/../../kube-system/secrets", "Bearer " + text, 400, "path_ambiguous", "BadRequest"},
		{"over the rate", "GET", "/prod/api/v1/namespaces/dev/pods", "Bearer " + limited, 429, "rate_limited", "TooManyRequests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.hits.Load()
			r := e.send(t, tt.method, tt.target, tt.auth)
			if r.status != tt.code {
				t.Fatalf("status %d, want %d: %s", r.status, tt.code, r.body)
			}
			st := kubeStatus(t, r)
			if st.Code != tt.code || st.Reason != tt.kreason || st.Error != tt.reason || st.Status != "Failure" ||
				!strings.HasPrefix(st.Message, tt.reason+": ") || st.APIVersion != "v1" {
				t.Errorf("Status %+v, want code %d reason %s and %s in the message", st, tt.code, tt.kreason, tt.reason)
			}
			if e.hits.Load() != before {
				t.Error("a denied request reached the API server")
			}
			if rec := lastRecord(t, e); rec.Reason != tt.reason || rec.Decision != "deny" || rec.Service != "prod" {
				t.Errorf("audit record %+v, want a denial for %s", rec, tt.reason)
			}
		})
	}
	// An HTTP service's denials keep the contract's JSON form.
	r := e.send(t, "GET", "/billing/v2/x", "Bearer "+text)
	if r.status != 403 || r.err != "scope_denied" || strings.Contains(r.body, "Status") {
		t.Errorf("HTTP service denial %d %q", r.status, r.body)
	}
}

// TestKubeDenialsBeforeAuthentication: until a token is authenticated
// the gateway does not look the service up, so the denial of an
// unauthenticated request is the same whether the service is a
// kubernetes one or does not exist: a Status when the path is a
// Kubernetes API path, the contract's JSON otherwise.
func TestKubeDenialsBeforeAuthentication(t *testing.T) {
	t.Parallel()
	e := kubeEnv(t, podList, false)
	for _, tt := range []struct {
		path   string
		status bool
	}{
		{"/api/v1/namespaces/dev/pods", true},
		{"/apis", true},
		{"/version", true},
		{"/v1/invoices", false},
		{"/apisx", false},
	} {
		for _, auth := range []string{"", "Bearer lk_nope"} {
			kubeSvc := e.send(t, "GET", "/prod"+tt.path, auth)
			unknown := e.send(t, "GET", "/nosuch"+tt.path, auth)
			if kubeSvc.status != 401 || unknown.status != 401 {
				t.Fatalf("%s %q: status %d and %d, want 401", tt.path, auth, kubeSvc.status, unknown.status)
			}
			if kubeSvc.body != unknown.body {
				t.Errorf("%s %q: the kubernetes service's denial %q differs from an unknown service's %q", tt.path, auth, kubeSvc.body, unknown.body)
			}
			if got := strings.Contains(kubeSvc.body, `"kind":"Status"`); got != tt.status {
				t.Errorf("%s %q: body %q, want a Status: %v", tt.path, auth, kubeSvc.body, tt.status)
			}
		}
	}
	if e.hits.Load() != 0 {
		t.Error("an unauthenticated request reached the API server")
	}
}

// TestKubeDiscovery checks that a token with any scope on a kubernetes
// service may make exactly the discovery reads, and that they use none of
// its scopes.
func TestKubeDiscovery(t *testing.T) {
	t.Parallel()
	e := kubeEnv(t, podList, false)
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"prod:GET:/api/v1/namespaces/dev/pods/*/log"}})
	for _, p := range []string{"/api", "/api/v1", "/apis", "/apis/apps/v1", "/version", "/openapi/v2", "/openapi/v3", "/openapi/v3/apis/apps/v1"} {
		if r := e.send(t, "GET", "/prod"+p, "Bearer "+text); r.status != 200 {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	for _, p := range []string{"/apis/apps", "/api/v1/nodes", "/apis/apps/v1/namespaces/dev/deployments", "/healthz"} {
		if r := e.send(t, "GET", "/prod"+p, "Bearer "+text); r.status != 403 {
			t.Errorf("GET %s: %d, want 403", p, r.status)
		}
	}
	// On an HTTP service the same paths are just paths.
	if r := e.send(t, "GET", "/billing/api", "Bearer "+text); r.status != 403 {
		t.Errorf("GET /billing/api: %d, want 403", r.status)
	}
}

// spdyUpstream answers an Upgrade: SPDY/3.1 request with 101 and then
// echoes bytes until the connection closes; ended gets one value then.
type spdyUpstream struct{ ended chan struct{} }

func (s *spdyUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "SPDY/3.1" {
		http.Error(w, "want an upgrade", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer func() { c.Close(); s.ended <- struct{}{} }()
	io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
	io.Copy(c, brw)
}

// TestKubeSPDYUpgrade checks that kubectl exec's SPDY/3.1 upgrade passes
// to a kubernetes service, and that the stream is cut when the token is
// revoked; and that another upgrade (h2c) is still stripped.
func TestKubeSPDYUpgrade(t *testing.T) {
	t.Parallel()
	up := &spdyUpstream{ended: make(chan struct{}, 4)}
	e := kubeEnv(t, up, false)
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"prod:GET,POST:/api/v1/namespaces/dev/pods/*/exec"}})
	c, err := net.Dial("tcp", e.gw.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /prod/api/v1/namespaces/dev/pods/web/exec?command=sh HTTP/1.1\r\nHost: gw.test\r\n"+
		"Authorization: Bearer "+text+"\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade answer %v, %v", resp, err)
	}
	c.SetDeadline(time.Now().Add(liveness))
	io.WriteString(c, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo %q, %v", got, err)
	}
	if err := e.a.Revoke(context.Background(), root, tok.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := br.Read(got); err == nil {
		t.Fatalf("read %q after the revocation, want the stream cut", got[:n])
	}
	select {
	case <-up.ended:
	case <-time.After(liveness):
		t.Fatal("upstream side of the stream still open after the revocation")
	}

	text, _ = e.issue(t, access.IssueRequest{Scopes: []string{"prod:GET,POST:/api/v1/namespaces/dev/pods/*/exec"}})
	r := e.send(t, "POST", "/prod/api/v1/namespaces/dev/pods/web/exec", "Bearer "+text, "Connection: Upgrade", "Upgrade: h2c")
	if r.status != 400 {
		t.Errorf("h2c upgrade: status %d, want the upstream's 400 (upgrade stripped)", r.status)
	}
}
