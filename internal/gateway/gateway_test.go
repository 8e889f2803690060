package gateway_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/gateway"
	"latchkey/internal/scope"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/token"
	"latchkey/internal/usage"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var root = access.Actor{TokenID: "root", Scopes: scope.Set{scope.MustParse("admin:*")}}

// seen is what the upstream received.
type seen struct {
	uri    string
	header http.Header
}

// env is a gateway in front of one upstream, service "billing" at
// UPSTREAM/base, with contractor alice granted billing:*:/v1/** and
// *:GET:/**.
type env struct {
	a     *access.Authority
	st    *sqlite.Store
	log   *audit.Log
	use   *usage.Recorder
	clock *clock
	gw    *httptest.Server
	upURL string
	hits  atomic.Int64
	last  atomic.Pointer[seen]
}

func newEnv(t *testing.T, opts ...func(*gateway.Config)) *env {
	t.Helper()
	e, _ := newEnvWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "upstream says hi")
	}), opts...)
	return e
}

// issue returns a new token of alice's with the given scopes.
func (e *env) issue(t *testing.T, req access.IssueRequest) (string, store.Token) {
	t.Helper()
	if !req.Admin {
		req.Contractor = "alice"
	}
	if req.TTL == 0 {
		req.TTL = time.Hour
	}
	iss, err := e.a.Issue(context.Background(), root, req)
	if err != nil {
		t.Fatal(err)
	}
	return iss.Text, iss.Token
}

// reply is a gateway response.
type reply struct {
	status int
	header http.Header
	body   string
	err    string // "error" of a JSON denial
	msg    string // "message" of a JSON denial
}

// send writes one request over a fresh connection, exactly as given (no
// client-side path cleaning), with auth as the Authorization header unless
// empty, and more header lines.
func (e *env) send(t *testing.T, method, target, auth string, more ...string) reply {
	t.Helper()
	c, err := net.Dial("tcp", e.gw.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n")
	if auth != "" {
		b.WriteString("Authorization: " + auth + "\r\n")
	}
	for _, h := range more {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(body)}
	if resp.Header.Get("Content-Type") == "application/json" {
		var d struct{ Error, Message string }
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatalf("denial body %q: %v", body, err)
		}
		r.err, r.msg = d.Error, d.Message
	}
	return r
}

func TestForward(t *testing.T) {
	e := newEnv(t)
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	r := e.send(t, "GET", "/billing/v1/%41/caf%C3%A9?q=1", "Bearer "+text,
		"X-Forwarded-For: 10.1.2.3", "X-Api-Key: forged", "Forwarded: for=10.1.2.3", "Connection: X-Api-Key")
	if r.status != 200 || r.body != "upstream says hi" {
		t.Fatalf("got %d %q, want 200 from the upstream", r.status, r.body)
	}
	s := e.last.Load()
	if s.uri != "/base/v1/%41/caf%C3%A9?q=1" {
		t.Errorf("upstream request-target %q, want /base/v1/%%41/caf%%C3%%A9?q=1", s.uri)
	}
	checks := map[string][]string{
		"Authorization":   {"Bearer up-secret"},
		"X-Api-Key":       {"k1"},
		"X-Forwarded-For": {"127.0.0.1"},
		"Forwarded":       nil,
	}
	for k, want := range checks {
		if got := s.header[k]; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("upstream header %s = %q, want %q", k, got, want)
		}
	}
	for k, vs := range s.header {
		if strings.Contains(strings.Join(vs, " "), text) {
			t.Errorf("contractor token reached the upstream in %s", k)
		}
	}
	if strings.Contains(r.body, "up-secret") || strings.Contains(strings.Join(r.header.Values("Authorization"), ""), "up-secret") {
		t.Error("credential leaked to the client")
	}
	if err := e.use.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, err := e.st.Token(context.Background(), tok.ID); err != nil || got.Uses != 1 {
		t.Errorf("token uses = %d (err %v), want 1", got.Uses, err)
	}
}

// TestForwardNoAuthorization checks that the contractor's Authorization
// header is removed even when the credential does not replace it.
func TestForwardNoAuthorization(t *testing.T) {
	e := newEnv(t)
	if _, err := e.a.AddService(context.Background(), root, "crm", e.upURL, []access.Header{{Name: "X-Secret", Value: "s3cret"}}); err != nil {
		t.Fatal(err)
	}
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"*:GET:/**"}})
	if r := e.send(t, "GET", "/crm", "Bearer "+text); r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	s := e.last.Load()
	if s.uri != "/" || s.header["Authorization"] != nil || s.header.Get("X-Secret") != "s3cret" {
		t.Fatalf("upstream saw %q, Authorization %q, X-Secret %q; want /, none, s3cret", s.uri, s.header["Authorization"], s.header.Get("X-Secret"))
	}
}

// TestForwardRawUTF8 checks that raw (unescaped) UTF-8, which CheckPath
// accepts, is forwarded as sent rather than re-escaped.
func TestForwardRawUTF8(t *testing.T) {
	e := newEnv(t)
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	r := e.send(t, "GET", "/billing/v1/café", "Bearer "+text)
	if r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	if got := e.last.Load().uri; got != "/base/v1/café" {
		t.Errorf("upstream request-target %q, want /base/v1/café", got)
	}
}

func TestDenials(t *testing.T) {
	e := newEnv(t)
	get, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	any, _ := e.issue(t, access.IssueRequest{Scopes: []string{"*:GET:/**"}})
	cidr, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}, CIDRs: []string{"10.0.0.0/8"}})
	admin, _ := e.issue(t, access.IssueRequest{Admin: true, Scopes: []string{"admin:tokens:read"}})
	unknown, _, err := token.Generate(token.Contractor, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, target, auth string
		status                     int
		reason                     string
	}{
		{"no header", "GET", "/billing/v1/x", "", 401, "token_missing"},
		{"basic scheme", "GET", "/billing/v1/x", "Basic YTpi", 401, "token_missing"},
		{"dpop scheme", "GET", "/billing/v1/x", "DPoP " + get, 401, "proof_invalid"}, // RFC 9449 7.1: the DPoP scheme needs a DPoP-bound token
		{"empty bearer", "GET", "/billing/v1/x", "Bearer ", 401, "token_missing"},
		{"malformed", "GET", "/billing/v1/x", "Bearer lk_nope", 401, "token_malformed"},
		{"bad checksum", "GET", "/billing/v1/x", "Bearer " + get[:len(get)-1] + flip(get[len(get)-1]), 401, "token_malformed"},
		{"unknown", "GET", "/billing/v1/x", "Bearer " + unknown, 401, "token_unknown"},
		{"wrong method", "POST", "/billing/v1/x", "Bearer " + get, 403, "scope_denied"},
		{"method case", "get", "/billing/v1/x", "Bearer " + get, 403, "scope_denied"},
		{"unregistered method", "TRACE", "/billing/v1/x", "Bearer " + any, 403, "scope_denied"},
		{"wrong path", "GET", "/billing/v2/x", "Bearer " + get, 403, "scope_denied"},
		{"wrong service", "GET", "/crm/v1/x", "Bearer " + get, 403, "scope_denied"},
		{"admin token", "GET", "/billing/v1/x", "Bearer " + admin, 403, "scope_denied"},
		{"source", "GET", "/billing/v1/x", "Bearer " + cidr, 403, "source_denied"},
		{"spoofed xff", "GET", "/billing/v1/x", "Bearer " + cidr, 403, "source_denied"},
		{"unknown service", "GET", "/crm/v1/x", "Bearer " + any, 404, "service_unknown"},
		{"dot dot", "GET", "/billing/v1/../x", "Bearer " + get, 400, "path_ambiguous"},
		{"encoded dot", "GET", "/billing/v1/%2E%2E/x", "Bearer " + get, 400, "path_ambiguous"},
		{"encoded slash", "GET", "/billing/v1%2Fx", "Bearer " + get, 400, "path_ambiguous"},
		{"double slash", "GET", "/billing//v1/x", "Bearer " + get, 400, "path_ambiguous"},
		{"raw quote", "GET", `/billing/v1/a"b`, "Bearer " + get, 400, "path_ambiguous"},
		{"absolute form", "GET", "http://gw.test/billing/v1/x", "Bearer " + get, 400, "path_ambiguous"},
		{"ambiguous without token", "GET", "/billing/v1/./x", "", 400, "path_ambiguous"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var more []string
			if tt.name == "spoofed xff" {
				more = []string{"X-Forwarded-For: 10.0.0.1"}
			}
			before := e.hits.Load()
			r := e.send(t, tt.method, tt.target, tt.auth, more...)
			if r.status != tt.status || r.err != tt.reason || r.msg == "" {
				t.Fatalf("got %d %q (%q), want %d %q with a message", r.status, r.err, r.msg, tt.status, tt.reason)
			}
			if e.hits.Load() != before {
				t.Fatal("a denied request reached the upstream")
			}
			if strings.Contains(r.msg, strings.TrimPrefix(tt.auth, "Bearer ")) && tt.auth != "" && len(tt.auth) > 12 {
				t.Fatalf("message %q contains the token", r.msg)
			}
		})
	}
}

// flip returns a base62 character other than c.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestRevokeThenNextRequestFails(t *testing.T) {
	e := newEnv(t)
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+text); r.status != 200 {
		t.Fatalf("before revoke: %d %s", r.status, r.body)
	}
	if err := e.a.Revoke(context.Background(), root, tok.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+text); r.status != 401 || r.err != "token_revoked" {
		t.Fatalf("after revoke: %d %q, want 401 token_revoked", r.status, r.err)
	}
}

func TestExpired(t *testing.T) {
	e := newEnv(t)
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+text); r.status != 200 {
		t.Fatalf("before expiry: %d %s", r.status, r.body)
	}
	e.clock.Add(time.Hour)
	if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+text); r.status != 401 || r.err != "token_expired" {
		t.Fatalf("after expiry: %d %q, want 401 token_expired", r.status, r.err)
	}
}

// TestEngagementEnded uses a token stored directly with an expiry past the
// engagement end (as if the engagement had been shortened after issue):
// Issue itself never creates one.
func TestEngagementEnded(t *testing.T) {
	e := newEnv(t)
	text, p, err := token.Generate(token.Contractor, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	st := store.Token{ID: p.ID, Contractor: "alice", Scopes: []string{"billing:GET:/v1/**"}, Hash: p.Hash(),
		ExpiresAt: now.Add(90 * 24 * time.Hour), CreatedAt: now, CreatedBy: "root"}
	if err := e.st.CreateToken(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(61 * 24 * time.Hour)
	if r := e.send(t, "GET", "/billing/v1/x", "Bearer "+text); r.status != 403 || r.err != "contractor_disabled" {
		t.Fatalf("got %d %q, want 403 contractor_disabled", r.status, r.err)
	}
}

func TestAuditRecords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	text, tok := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	size, err := e.log.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.send(t, "GET", "/billing/v1/%41", "Bearer "+text)
	e.send(t, "POST", "/billing/v1/x", "Bearer "+text)
	want := []audit.Record{
		{Actor: tok.ID, ActorName: "alice", Action: "gateway.request", Contractor: "alice", TokenID: tok.ID,
			Service: "billing", Method: "GET", Path: "/v1/%41", Decision: audit.Allow, Source: "127.0.0.1"},
		{Actor: tok.ID, ActorName: "alice", Action: "gateway.request", Contractor: "alice", TokenID: tok.ID,
			Service: "billing", Method: "POST", Path: "/v1/x", Status: 403, Decision: audit.Deny, Reason: "scope_denied", Source: "127.0.0.1"},
	}
	if n, err := e.log.Size(ctx); err != nil || n != size+int64(len(want)) {
		t.Fatalf("log size %d (err %v), want %d", n, err, size+int64(len(want)))
	}
	for i, w := range want {
		got, _, err := e.log.Record(ctx, size+int64(i))
		if err != nil {
			t.Fatal(err)
		}
		got.Time = time.Time{}
		if got != w {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
}

func TestAuditUnavailable(t *testing.T) {
	e := newEnv(t)
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"billing:GET:/v1/**"}})
	e.log.Close()
	for _, tt := range []struct{ name, method string }{{"allowed", "GET"}, {"denied", "POST"}} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.send(t, tt.method, "/billing/v1/x", "Bearer "+text)
			if r.status != 503 || r.err != "audit_unavailable" {
				t.Fatalf("got %d %q, want 503 audit_unavailable", r.status, r.err)
			}
		})
	}
	if n := e.hits.Load(); n != 0 {
		t.Fatalf("upstream called %d times with the audit log down", n)
	}
}

func TestUpstreamUnavailable(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := e.a.AddService(ctx, root, "crm", "http://"+addr, []access.Header{{Name: "X-Secret", Value: "s3cret"}}); err != nil {
		t.Fatal(err)
	}
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"*:GET:/**"}})
	r := e.send(t, "GET", "/crm/x", "Bearer "+text)
	if r.status != 502 || r.err != "upstream_unavailable" || strings.Contains(r.body, addr) || strings.Contains(r.body, "s3cret") {
		t.Fatalf("got %d %s, want a generic 502 upstream_unavailable", r.status, r.body)
	}
}
