package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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
	ctx := t.Context()
	gw, iss := onboard(t, r, adminapi.NewService{Name: "billing", Upstream: up.URL,
		CredentialHeaders: []access.Header{{Name: "Authorization", Value: "Bearer upstream-secret"}}}, "billing:read:/v1/**", "billing:GET:/v1/invoices/*")
	cl := &adminapi.Client{Addr: r.url, Token: adminToken(t, r.stdout.String())}
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

// TestServeObservability: the admin listener serves /healthz, /readyz and
// /metrics, whose series count the gateway's decisions, and the access
// log has one line per gateway request without the token.
func TestServeObservability(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	dir := newDir(t)
	logs := &syncBuffer{}
	cfg := testConfig(dir, logs)
	cfg.AccessLog = true
	r := start(t, cfg)
	ctx := t.Context()
	gw, iss := onboard(t, r, adminapi.NewService{Name: "billing", Upstream: up.URL}, "billing:read:/**", "billing:GET:/a")
	call := func(base, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	call(gw, "/billing/a", iss.Token)
	call(gw, "/billing/a", iss.Token)
	call(gw, "/billing/b", iss.Token)
	call(gw, "/made-up-service/a", iss.Token)
	call(gw, "/billing/a", "")

	if status, body := call(r.url, "/healthz", ""); status != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("/healthz: %d %s", status, body)
	}
	if status, body := call(r.url, "/readyz", ""); status != 200 || !strings.Contains(body, `"ready"`) {
		t.Errorf("/readyz: %d %s", status, body)
	}
	status, body := call(r.url, "/metrics", "")
	if status != 200 {
		t.Fatalf("/metrics: %d %s", status, body)
	}
	for _, want := range []string{
		`latchkey_gateway_requests_total{service="billing",decision="allow",reason=""} 2`,
		`latchkey_gateway_requests_total{service="billing",decision="deny",reason="scope_denied"} 1`,
		`latchkey_gateway_requests_total{service="billing",decision="deny",reason="token_missing"} 1`,
		`latchkey_gateway_requests_total{service="_other",decision="deny",reason="scope_denied"} 1`,
		`latchkey_gateway_request_duration_seconds_count{service="billing",decision="allow"} 2`,
		`latchkey_audit_healthy 1`,
		`latchkey_audit_queue_depth 0`,
		`latchkey_audit_append_duration_seconds_count{outcome="ok"} `,
		`latchkey_audit_append_duration_seconds_count{outcome="error"} 0`,
		`latchkey_audit_pending_records `,
		`latchkey_audit_integrated_records_total `,
		`latchkey_audit_integrate_duration_seconds_count `,
		`latchkey_token_cache_entries 2`, // the contractor token and the admin token
		"latchkey_token_cache_hits_total ",
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Each of the five gateway requests waited for its audit record (and
	// so did the admin actions of the setup).
	m := regexp.MustCompile(`latchkey_audit_append_duration_seconds_count\{outcome="ok"\} (\d+)`).FindStringSubmatch(body)
	if m == nil {
		t.Error("/metrics lacks the count of audit appends")
	} else if n, _ := strconv.Atoi(m[1]); n < 5 {
		t.Errorf("/metrics: %d audit appends observed, want at least 5", n)
	}
	if strings.Contains(body, "made-up-service") {
		t.Error("/metrics has a series for a service name a client made up")
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	var lines int
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="gateway request"`) {
			lines++
			if !strings.Contains(l, "token="+iss.ID) && !strings.Contains(l, "reason=token_missing") {
				t.Errorf("access log line without the token id: %s", l)
			}
		}
	}
	if lines != 5 {
		t.Errorf("%d access log lines, want 5:\n%s", lines, logs.String())
	}
	if strings.Contains(logs.String(), iss.Token) {
		t.Error("the token text is in the log")
	}
}

// TestShutdownCutsStreams: a stream open through the gateway when serve
// is told to stop is cut after the drain period, and serve returns.
func TestShutdownCutsStreams(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	dir := newDir(t)
	cfg := testConfig(dir, &syncBuffer{})
	cfg.StreamDrain = 200 * time.Millisecond
	r := start(t, cfg)
	ctx := t.Context()
	gw, iss := onboard(t, r, adminapi.NewService{Name: "events", Upstream: up.URL}, "events:read:/**", "events:GET:/**")
	req, _ := http.NewRequestWithContext(ctx, "GET", gw+"/events/stream", nil)
	req.Header.Set("Authorization", "Bearer "+iss.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("data: first\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("first event: %v", err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the stream ended cleanly; want it cut")
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cutting the stream")
	}
}

// onboard registers svc through the admin API of r, onboards contractor
// alice with a grant of grant, and issues her a token of scope. It
// returns the gateway's base URL, read from the data directory, and the
// token.
func onboard(t *testing.T, r *running, svc adminapi.NewService, grant, scope string) (string, adminapi.IssuedToken) {
	t.Helper()
	cl := &adminapi.Client{Addr: r.url, Token: adminToken(t, r.stdout.String())}
	ctx := t.Context()
	if _, err := cl.AddService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AddContractor(ctx, adminapi.NewContractor{Name: "alice", Email: "a@example.com", Sponsor: "bob", Until: "10d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AddGrant(ctx, adminapi.NewGrant{Contractor: "alice", Scopes: []string{grant}}); err != nil {
		t.Fatal(err)
	}
	iss, err := cl.IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{scope}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(r.dir, gatewayFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)), iss
}
