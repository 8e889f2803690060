package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
)

// TestServeGateway: with --gateway-addr, serve runs the gateway beside the
// admin API: a token issued through the admin API reaches a real upstream
// through the gateway with the service's credential, and fails on the
// very next request once revoked.
func TestServeGateway(t *testing.T) {
	var gotAuth, gotPath string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.EscapedPath()
		io.WriteString(w, "hello")
	}))
	defer up.Close()
	dir := newDir(t)
	cfg := testConfig(dir, &syncBuffer{})
	cfg.GatewayAddr = "127.0.0.1:0"
	r := start(t, cfg)
	cl := &adminapi.Client{Addr: r.url, Token: adminToken(t, r.stdout.String())}
	ctx := t.Context()
	if _, err := cl.AddService(ctx, adminapi.NewService{Name: "billing", Upstream: up.URL,
		CredentialHeaders: []access.Header{{Name: "Authorization", Value: "Bearer upstream-secret"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AddContractor(ctx, adminapi.NewContractor{Name: "alice", Email: "a@example.com", Sponsor: "bob", Until: "10d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AddGrant(ctx, adminapi.NewGrant{Contractor: "alice", Scopes: []string{"billing:read:/v1/**"}}); err != nil {
		t.Fatal(err)
	}
	iss, err := cl.IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{"billing:GET:/v1/invoices/*"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, gatewayFile))
	if err != nil {
		t.Fatal(err)
	}
	gw := strings.TrimSpace(string(b))
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", gw+path, nil)
		req.Header.Set("Authorization", "Bearer "+iss.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := get("/billing/v1/invoices/42"); status != 200 || body != "hello" {
		t.Fatalf("allowed request: %d %s", status, body)
	}
	if gotAuth != "Bearer upstream-secret" || gotPath != "/v1/invoices/42" {
		t.Fatalf("upstream saw Authorization %q, path %q", gotAuth, gotPath)
	}
	if status, body := get("/billing/v1/other/42"); status != 403 || !strings.Contains(body, `"scope_denied"`) {
		t.Fatalf("out of scope: %d %s", status, body)
	}
	if _, err := cl.RevokeToken(ctx, iss.ID); err != nil {
		t.Fatal(err)
	}
	if status, body := get("/billing/v1/invoices/42"); status != 401 || !strings.Contains(body, `"token_revoked"`) {
		t.Fatalf("after revoke: %d %s", status, body)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, gatewayFile)); !os.IsNotExist(err) {
		t.Fatalf("gateway.url left behind: %v", err)
	}
}
