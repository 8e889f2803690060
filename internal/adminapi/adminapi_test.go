package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/audit"
	"latchkey/internal/notify"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/usage"
)

type env struct {
	a    *access.Authority
	srv  *httptest.Server
	root string // admin:* token text
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with the config adjusted by set, if not nil.
func newEnvWith(t *testing.T, set func(*adminapi.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	box, _ := seal.New(key)
	storage := st.Audit(sqlite.SyncNormal)
	log := audit.New(storage, audit.Config{})
	t.Cleanup(func() { log.Close() })
	a, err := access.New(access.Config{Store: st, Box: box, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	rec := usage.New(usage.Config{Store: st, Interval: 10 * time.Millisecond})
	t.Cleanup(func() { rec.Close(ctx) })
	if err := audit.GenerateKey(dir, "latchkey-test"); err != nil {
		t.Fatal(err)
	}
	signer, err := audit.LoadSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(ctx context.Context, force bool) ([]byte, error) { return log.Checkpoint(ctx, signer) }
	hooks, err := notify.New(notify.Config{Store: st, Box: box})
	if err != nil {
		t.Fatal(err)
	}
	cfg := adminapi.Config{Authority: a, Usage: rec, Audit: log, AuditStorage: storage, Checkpoints: sign, Webhooks: hooks}
	if set != nil {
		set(&cfg)
	}
	api, err := adminapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	iss, err := a.Issue(ctx, access.Actor{TokenID: "init", Scopes: scope.Set{scope.MustParse("admin:*")}},
		access.IssueRequest{Admin: true, Scopes: []string{"admin:*"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return &env{a: a, srv: srv, root: iss.Text}
}

func (e *env) client(tok string) *adminapi.Client {
	return &adminapi.Client{Addr: e.srv.URL, Token: tok}
}

// seed creates service billing, contractor alice and a grant, and returns
// a contractor token text.
func (e *env) seed(t *testing.T) (grantID int64, contractorToken string) {
	t.Helper()
	ctx := context.Background()
	c := e.client(e.root)
	if _, err := c.AddService(ctx, adminapi.NewService{Name: "billing", Upstream: "http://127.0.0.1:9",
		CredentialHeaders: []access.Header{{Name: "Authorization", Value: "Bearer up-secret"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddContractor(ctx, adminapi.NewContractor{Name: "alice", Email: "alice@example.com", Sponsor: "bob", Until: "30d"}); err != nil {
		t.Fatal(err)
	}
	g, err := c.AddGrant(ctx, adminapi.NewGrant{Contractor: "alice", Scopes: []string{"billing:read:/v1/**"}, Until: "10d"})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := c.IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: "8h"})
	if err != nil {
		t.Fatal(err)
	}
	return g.ID, iss.Token
}

func (e *env) adminToken(t *testing.T, scopes ...string) string {
	t.Helper()
	iss, err := e.client(e.root).IssueToken(context.Background(), adminapi.NewToken{Admin: true, Scopes: scopes, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	return iss.Token
}

func reasonOf(err error) string {
	var ae *adminapi.APIError
	if errors.As(err, &ae) {
		return ae.Problem.Error
	}
	return ""
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	_, ctok := e.seed(t)
	ctx := context.Background()
	revoked := e.adminToken(t, "admin:*")
	who, err := e.client(revoked).Whoami(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client(e.root).RevokeToken(ctx, who.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, tok, reason string
		status            int
	}{
		{"missing", "", "token_missing", 401},
		{"malformed", "lka_nope", "token_malformed", 401},
		{"unknown", "lka_" + strings.Repeat("A", 50), "token_malformed", 401},
		{"contractor token", ctok, "forbidden", 403},
		{"revoked admin", revoked, "token_revoked", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client(tt.tok).Contractors(ctx)
			var ae *adminapi.APIError
			if !errors.As(err, &ae) || ae.Status != tt.status || ae.Problem.Error != tt.reason {
				t.Fatalf("err = %#v, want %d %s", err, tt.status, tt.reason)
			}
		})
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/contractors", nil)
	req.Header.Set("Authorization", "Basic "+e.root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("Basic scheme: status %d, want 401", resp.StatusCode)
	}
}

// TestRouteScopes checks every route against a token holding exactly its
// scope (allowed) and a token holding every other scope (refused).
func TestRouteScopes(t *testing.T) {
	e := newEnv(t)
	grantID, _ := e.seed(t)
	doc := openAPIDoc(t, e)
	all := []string{}
	for _, r := range []string{"contractors", "services", "grants", "tokens", "reports", "audit", "policy", "webhooks", "requests", "approvers"} {
		all = append(all, "admin:"+r+":read", "admin:"+r+":write")
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if op.Scope == "" || op.Scope == "contractor token" {
				continue // contractor routes: TestSelfServiceRoutes, derive_test.go
			}
			others := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == op.Scope })
			url := strings.NewReplacer("{name}", "alice", "{id}", "999999").Replace(path)
			if strings.HasPrefix(path, "/v1/services/") {
				url = strings.Replace(path, "{name}", "billing", 1)
			}
			if strings.HasPrefix(path, "/v1/grants/") {
				url = strings.Replace(path, "{id}", itoa(grantID), 1)
			}
			status, body := call(t, e, method, url, e.adminToken(t, others...), "")
			if status != 403 || !strings.Contains(body, op.Scope) {
				t.Errorf("%s %s without %s: %d %s", method, path, op.Scope, status, body)
			}
			status, body = call(t, e, method, url, e.adminToken(t, op.Scope), "{}")
			if status == 403 || status == 401 || status == 404 && strings.Contains(body, "no such endpoint") {
				t.Errorf("%s %s with %s: %d %s", method, path, op.Scope, status, body)
			}
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func call(t *testing.T, e *env, method, path, tok, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" && strings.EqualFold(method, "POST") {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(strings.ToUpper(method), e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" && !(strings.HasSuffix(path, "/export") && ct == "application/x-ndjson") {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, string(b)
}

type apiDoc struct {
	Paths map[string]map[string]struct {
		Scope       string `json:"x-latchkey-scope"`
		RequestBody *struct {
			Content map[string]struct {
				Schema struct {
					Ref string `json:"$ref"`
				} `json:"schema"`
			} `json:"content"`
		} `json:"requestBody"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]any `json:"properties"`
			Required   []string       `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

func openAPIDoc(t *testing.T, e *env) apiDoc {
	t.Helper()
	resp, err := http.Get(e.srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc apiDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestOpenAPIMatchesHandlers checks the document against the server: every
// documented operation is served, every undocumented one is not, and the
// replies carry exactly the documented properties.
func TestOpenAPIMatchesHandlers(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	doc := openAPIDoc(t, e)
	want := []string{
		"GET /v1/whoami", "POST /v1/contractors", "GET /v1/contractors", "GET /v1/contractors/{name}",
		"POST /v1/contractors/{name}/offboard", "POST /v1/services", "GET /v1/services", "GET /v1/services/{name}",
		"POST /v1/grants", "GET /v1/grants", "POST /v1/grants/{id}/revoke", "POST /v1/tokens", "GET /v1/tokens",
		"GET /v1/tokens/{id}", "POST /v1/tokens/{id}/revoke", "POST /v1/tokens/{id}/rotate",
		"GET /v1/reports/active", "GET /v1/reports/access", "GET /v1/reports/unused",
		"GET /v1/audit", "GET /v1/audit/checkpoint", "GET /v1/audit/proof/{index}", "GET /v1/audit/consistency",
		"GET /v1/audit/export", "GET /healthz", "GET /readyz",
		"POST /v1/webhooks", "GET /v1/webhooks", "GET /v1/webhooks/{id}", "DELETE /v1/webhooks/{id}", "GET /v1/webhooks/deliveries",
		"GET /v1/requests", "GET /v1/requests/{id}", "POST /v1/requests/{id}/approve", "POST /v1/requests/{id}/deny",
		"GET /v1/approvers", "POST /v1/approvers", "POST /v1/approvers/remove",
		"POST /v1/self/requests", "GET /v1/self/requests", "GET /v1/self/requests/{id}", "POST /v1/self/requests/{id}/fetch",
		"GET /v1/policy", "PUT /v1/policy",
		"POST /v1/leaks", "POST /v1/tokens/leaked", "POST /v1/self/tokens",
	}
	var got []string
	for path, ops := range doc.Paths {
		for m := range ops {
			got = append(got, strings.ToUpper(m)+" "+path)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("documented operations:\n%v\nwant:\n%v", got, want)
	}
	// Undocumented method on a documented path: not served.
	if status, _ := call(t, e, "DELETE", "/v1/contractors/alice", e.root, ""); status != 405 {
		t.Fatalf("DELETE /v1/contractors/alice: %d, want 405", status)
	}
	if status, body := call(t, e, "GET", "/v1/nothing", e.root, ""); status != 404 || !strings.Contains(body, "not_found") {
		t.Fatalf("GET /v1/nothing: %d %s", status, body)
	}
	// Replies carry the documented properties, and all required ones.
	checks := map[string]string{
		"/v1/contractors/alice": "Contractor", "/v1/services/billing": "Service", "/v1/whoami": "Whoami",
		"/v1/reports/unused?idle=1h": "UnusedReport",
	}
	for path, schema := range checks {
		_, body := call(t, e, "GET", path, e.root, "")
		checkSchema(t, doc, schema, body)
	}
	_, body := call(t, e, "GET", "/v1/audit/proof/0", e.root, "")
	checkSchema(t, doc, "InclusionProof", body)
	_, body = call(t, e, "GET", "/v1/audit?limit=1", e.root, "")
	checkSchema(t, doc, "AuditPage", body)
	for path, schema := range map[string]string{"/v1/tokens": "Token", "/v1/grants": "Grant", "/v1/contractors": "Contractor",
		"/v1/reports/active": "ActiveRow", "/v1/reports/access": "AccessRow", "/v1/services": "Service"} {
		_, body := call(t, e, "GET", path, e.root, "")
		var rows []json.RawMessage
		if err := json.Unmarshal([]byte(body), &rows); err != nil || len(rows) == 0 {
			t.Fatalf("GET %s: %v %s", path, err, body)
		}
		checkSchema(t, doc, schema, string(rows[0]))
	}
}

func checkSchema(t *testing.T, doc apiDoc, schema, body string) {
	t.Helper()
	s, ok := doc.Components.Schemas[schema]
	if !ok {
		t.Fatalf("schema %s not documented", schema)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(body), &obj); err != nil {
		t.Fatalf("%s: %v: %s", schema, err, body)
	}
	for k := range obj {
		if _, ok := s.Properties[k]; !ok {
			t.Errorf("%s reply has undocumented property %q", schema, k)
		}
	}
	for _, k := range s.Required {
		if _, ok := obj[k]; !ok {
			t.Errorf("%s reply lacks required property %q", schema, k)
		}
	}
}

func TestBadBodies(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	big := `{"name":"x","email":"` + strings.Repeat("a", adminapi.MaxBody) + `"}`
	tests := []struct {
		name, path, body, reason string
		status                   int
	}{
		{"oversized", "/v1/contractors", big, "body_too_large", 413},
		{"not json", "/v1/contractors", "name=alice", "invalid_request", 400},
		{"unknown field", "/v1/contractors", `{"name":"zed","email":"z@example.com","sponsor":"s","until":"1d","admin":true}`, "invalid_request", 400},
		{"trailing data", "/v1/contractors", `{"name":"zed","email":"z@example.com","sponsor":"s","until":"1d"} {}`, "invalid_request", 400},
		{"empty", "/v1/contractors", "", "invalid_request", 400},
		{"wrong type", "/v1/tokens", `{"contractor":"alice","scopes":"billing:GET:/v1/x","ttl":"1h"}`, "invalid_request", 400},
		{"bad until", "/v1/contractors", `{"name":"zed","email":"z@example.com","sponsor":"s","until":"tomorrow"}`, "invalid_request", 400},
		{"bad ttl", "/v1/tokens", `{"contractor":"alice","scopes":["billing:GET:/v1/x"],"ttl":"1 hour"}`, "invalid_request", 400},
		{"no ttl", "/v1/tokens", `{"contractor":"alice","scopes":["billing:GET:/v1/x"]}`, "ttl_missing", 400},
		{"duplicate contractor", "/v1/contractors", `{"name":"alice","email":"a@example.com","sponsor":"s","until":"1d"}`, "conflict", 409},
		{"duplicate service", "/v1/services", `{"name":"billing","upstream":"http://x"}`, "conflict", 409},
		{"unknown contractor grant", "/v1/grants", `{"contractor":"zed","scopes":["billing:GET:/x"]}`, "not_found", 404},
		{"not covered", "/v1/tokens", `{"contractor":"alice","scopes":["billing:DELETE:/v1/x"],"ttl":"1h"}`, "scope_not_covered", 403},
		{"bad grant id", "/v1/grants/abc/revoke", "", "invalid_request", 400},
		{"bad token id", "/v1/tokens/abc/revoke", "", "invalid_request", 400},
		{"unknown token", "/v1/tokens/AAAAAAAAAAAA/revoke", "", "not_found", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := dump(t, e)
			req, _ := http.NewRequest("POST", e.srv.URL+tt.path, bytes.NewReader([]byte(tt.body)))
			req.Header.Set("Authorization", "Bearer "+e.root)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p adminapi.Problem
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || p.Error != tt.reason || p.Message == "" || strings.Contains(p.Message, "\n") {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, p, tt.status, tt.reason)
			}
			if after := dump(t, e); after != before {
				t.Fatalf("refused request changed the store:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// dump renders every listing, to compare the store before and after.
func dump(t *testing.T, e *env) string {
	t.Helper()
	var b strings.Builder
	for _, p := range []string{"/v1/contractors", "/v1/services", "/v1/grants", "/v1/tokens"} {
		_, body := call(t, e, "GET", p, e.root, "")
		b.WriteString(body)
	}
	// Last-use times of the root token change with every call; drop them.
	var out []string
	for _, line := range strings.Split(b.String(), "\n") {
		out = append(out, line)
	}
	return stripVolatile(strings.Join(out, "\n"))
}

func stripVolatile(s string) string {
	var v any
	var parts []string
	dec := json.NewDecoder(strings.NewReader(s))
	for dec.Decode(&v) == nil {
		if rows, ok := v.([]any); ok {
			for _, r := range rows {
				if m, ok := r.(map[string]any); ok {
					delete(m, "last_used_at")
					delete(m, "uses")
				}
			}
		}
		b, _ := json.Marshal(v)
		parts = append(parts, string(b))
	}
	return strings.Join(parts, "\n")
}

func TestSecretsNeverReturned(t *testing.T) {
	e := newEnv(t)
	_, ctok := e.seed(t)
	for _, p := range []string{"/v1/services", "/v1/services/billing", "/v1/tokens", "/v1/reports/active", "/v1/reports/access", "/v1/reports/unused?idle=1s", "/v1/openapi.json"} {
		_, body := call(t, e, "GET", p, e.root, "")
		if strings.Contains(body, "up-secret") {
			t.Errorf("GET %s returns the upstream credential", p)
		}
		if strings.Contains(body, ctok[len(ctok)-38:]) || strings.Contains(body, e.root[len(e.root)-38:]) {
			t.Errorf("GET %s returns a token secret", p)
		}
	}
}
