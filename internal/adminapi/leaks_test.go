package adminapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/audit"
	"latchkey/internal/gateway"
	"latchkey/internal/leak"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/token"
)

// gwEnv is an admin API and a gateway on one Authority, with a real
// upstream, and the events the Authority emitted.
type gwEnv struct {
	*env
	st     *sqlite.Store
	gw     *httptest.Server
	mu     sync.Mutex
	events []access.Event
}

func newGWEnv(t *testing.T, keys *leak.Keys) *gwEnv {
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
	e := &gwEnv{st: st}
	a, err := access.New(access.Config{Store: st, Box: box, Audit: log, Events: func(_ context.Context, ev access.Event) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.events = append(e.events, ev)
	}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := adminapi.New(adminapi.Config{Authority: a, LeakKeys: keys, Audit: log, AuditStorage: storage})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	gh, err := gateway.New(gateway.Config{Authority: a, TokenRate: rate.Inf, FailureRate: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	e.gw = httptest.NewServer(gh)
	t.Cleanup(e.gw.Close)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream ok") }))
	t.Cleanup(up.Close)
	iss, err := a.Issue(ctx, access.Actor{TokenID: "init", Scopes: scope.Set{scope.MustParse("admin:*")}},
		access.IssueRequest{Admin: true, Scopes: []string{"admin:*"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.env = &env{a: a, srv: srv, root: iss.Text}
	c := e.client(e.root)
	if _, err := c.AddService(ctx, adminapi.NewService{Name: "billing", Upstream: up.URL}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddContractor(ctx, adminapi.NewContractor{Name: "alice", Email: "alice@example.com", Sponsor: "bob", Until: "30d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddGrant(ctx, adminapi.NewGrant{Contractor: "alice", Scopes: []string{"billing:read:/v1/**"}, Until: "10d"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// issue returns a new token of alice's.
func (e *gwEnv) issue(t *testing.T, nt adminapi.NewToken) adminapi.IssuedToken {
	t.Helper()
	nt.Contractor = "alice"
	if nt.TTL == "" {
		nt.TTL = "8h"
	}
	iss, err := e.client(e.root).IssueToken(context.Background(), nt)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// call makes one gateway request with tok and returns the status and the
// reason word (or the upstream's body).
func (e *gwEnv) call(t *testing.T, path, tok string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.gw.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p adminapi.Problem
	if json.Unmarshal(b, &p) == nil && p.Error != "" {
		return resp.StatusCode, p.Error
	}
	return resp.StatusCode, string(b)
}

// audit returns the audit records that q selects, newest first.
func (e *gwEnv) audit(t *testing.T, q adminapi.AuditQuery) []adminapi.AuditRecord {
	t.Helper()
	page, err := e.client(e.root).AuditSearch(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return page.Records
}

func (e *gwEnv) eventsOf(typ string) []access.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []access.Event
	for _, ev := range e.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// post sends a leak report with the given headers (keyID, signature;
// empty: header absent) and returns the status and body.
func (e *gwEnv) post(t *testing.T, body []byte, keyID, sig string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/leaks", bytes.NewReader(body))
	if keyID != "" {
		req.Header.Set("Github-Public-Key-Identifier", keyID)
	}
	if sig != "" {
		req.Header.Set("Github-Public-Key-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func report(tokens ...string) []byte {
	var es []leak.Entry
	for _, tok := range tokens {
		es = append(es, leak.Entry{Token: tok, Type: "latchkey_token", URL: "https://github.com/o/r/blob/main/x", Source: "content"})
	}
	b, _ := json.Marshal(es)
	return b
}

func genKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t *testing.T, k *ecdsa.PrivateKey, body []byte) string {
	t.Helper()
	s, err := leak.Sign(k, body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLeakReport: a signed report revokes the token at once (the very
// next gateway request is refused token_revoked) and notifies; every
// refused report changes nothing; unknown, malformed and already revoked
// tokens get the same answer as live ones.
func TestLeakReport(t *testing.T) {
	priv := genKey(t)
	doc, err := leak.Document("key-1", &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := leak.ParseKeys(doc)
	if err != nil {
		t.Fatal(err)
	}
	e := newGWEnv(t, keys)
	tok := e.issue(t, adminapi.NewToken{Scopes: []string{"billing:GET:/v1/x"}})
	if st, body := e.call(t, "/billing/v1/x", tok.Token); st != 200 {
		t.Fatalf("gateway before any report: %d %s", st, body)
	}

	good := report(tok.Token)
	big := append(report(tok.Token), bytes.Repeat([]byte(" "), leak.MaxReport)...)
	many := report(strings.Split(strings.Repeat(tok.Token+",", leak.MaxEntries+1), ",")[:leak.MaxEntries+1]...)
	malformed := []byte(`[{"token":"` + tok.Token + `"}`)
	notArray := []byte(`{"token":"` + tok.Token + `"}`)
	refusals := []struct {
		name, keyID, sig string
		body             []byte
		status           int
		reason           string
	}{
		{"missing signature", "key-1", "", good, 401, "signature_invalid"},
		{"missing key id", "", sign(t, priv, good), good, 401, "key_unknown"},
		{"bad signature", "key-1", sign(t, genKey(t), good), good, 401, "signature_invalid"},
		{"signature not base64", "key-1", "%%%", good, 401, "signature_invalid"},
		{"wrong key id", "key-2", sign(t, priv, good), good, 401, "key_unknown"},
		{"tampered body", "key-1", sign(t, priv, good), append(good, ' '), 401, "signature_invalid"},
		{"oversized body", "key-1", sign(t, priv, big), big, 413, "body_too_large"},
		{"too many entries", "key-1", sign(t, priv, many), many, 413, "body_too_large"},
		{"malformed JSON", "key-1", sign(t, priv, malformed), malformed, 400, "invalid_request"},
		{"not an array", "key-1", sign(t, priv, notArray), notArray, 400, "invalid_request"},
	}
	for _, tc := range refusals {
		status, body := e.post(t, tc.body, tc.keyID, tc.sig)
		var p adminapi.Problem
		if err := json.Unmarshal([]byte(body), &p); err != nil || status != tc.status || p.Error != tc.reason {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.reason)
		}
		if st, body := e.call(t, "/billing/v1/x", tok.Token); st != 200 {
			t.Fatalf("%s: the token stopped working: %d %s", tc.name, st, body)
		}
	}
	if n := len(e.eventsOf(access.EventLeakReported)); n != 0 {
		t.Fatalf("refused reports emitted %d leak events", n)
	}
	refused := e.audit(t, adminapi.AuditQuery{Action: "admin.request", Decision: "deny"})
	if len(refused) != len(refusals) {
		t.Errorf("audited %d refused reports, want %d: %+v", len(refused), len(refusals), refused)
	}

	// Unknown and malformed tokens get the answer a live token gets.
	forged, other := forgedToken(t, e)
	var answers []string
	for _, text := range []string{"lk_" + strings.Repeat("A", 50), "not a token", forged, tok.Token, tok.Token} {
		body := report(text)
		status, reply := e.post(t, body, "key-1", sign(t, priv, body))
		answers = append(answers, fmt.Sprintf("%d %s", status, reply))
	}
	for i, a := range answers {
		if a != answers[0] || !strings.HasPrefix(a, "200 ") {
			t.Errorf("answer %d: %q, want the same 200 for every token (first: %q)", i, a, answers[0])
		}
	}
	if o, err := e.st.Token(context.Background(), other); err != nil || !o.RevokedAt.IsZero() {
		t.Errorf("a text with a stored id but the wrong secret revoked that token: %+v %v", o, err)
	}

	// The reported token is revoked at once, as leaked, and its sponsor
	// is to be told.
	if st, reason := e.call(t, "/billing/v1/x", tok.Token); st != 401 || reason != "token_revoked" {
		t.Fatalf("gateway after the report: %d %s, want 401 token_revoked", st, reason)
	}
	stored, err := e.st.Token(context.Background(), tok.ID)
	if err != nil || stored.RevokedReason != store.RevokeLeaked {
		t.Fatalf("stored token: reason %q, %v", stored.RevokedReason, err)
	}
	leaks := e.eventsOf(access.EventLeakReported)
	if len(leaks) != 2 { // reported twice: both announced
		t.Fatalf("leak events: %+v", leaks)
	}
	if ev := leaks[0]; ev.TokenID != tok.ID || ev.Contractor != "alice" || ev.Reason != store.RevokeLeaked {
		t.Errorf("leak event: %+v", ev)
	}
	if revs := e.eventsOf(access.EventTokenRevoked); len(revs) != 1 || revs[0].Reason != store.RevokeLeaked {
		t.Errorf("revoked events: %+v", revs)
	}
	if recs := e.audit(t, adminapi.AuditQuery{Action: "leak.report"}); len(recs) != len(answers) {
		t.Errorf("audited %d accepted reports, want %d", len(recs), len(answers))
	}
	recs := e.audit(t, adminapi.AuditQuery{Action: "token.leak", Token: tok.ID})
	if len(recs) != 2 || recs[1].Decision != "allow" || recs[1].Reason != store.RevokeLeaked || recs[1].Contractor != "alice" {
		t.Errorf("audit of the leaked token: %+v", recs)
	}
}

// TestLeakReportWithoutKeys: with no keys configured every report is
// refused, signed or not.
func TestLeakReportWithoutKeys(t *testing.T) {
	e := newGWEnv(t, nil)
	tok := e.issue(t, adminapi.NewToken{Scopes: []string{"billing:GET:/v1/x"}})
	body := report(tok.Token)
	status, reply := e.post(t, body, "key-1", sign(t, genKey(t), body))
	if status != 503 || !strings.Contains(reply, `"leak_keys_missing"`) {
		t.Errorf("report without keys: %d %s", status, reply)
	}
	if st, _ := e.call(t, "/billing/v1/x", tok.Token); st != 200 {
		t.Errorf("token stopped working: %d", st)
	}
}

// TestReportLeakByAdmin: an admin reports a token text; the reply says
// what was revoked; unknown and malformed texts are refused.
func TestReportLeakByAdmin(t *testing.T) {
	e := newGWEnv(t, nil)
	tok := e.issue(t, adminapi.NewToken{Scopes: []string{"billing:GET:/v1/x"}})
	ctx := context.Background()
	writer := e.adminToken(t, "admin:tokens:write")
	reader := e.adminToken(t, "admin:tokens:read")
	if _, err := e.client(reader).ReportLeak(ctx, tok.Token); reasonOf(err) != "forbidden" {
		t.Errorf("without admin:tokens:write: %v", err)
	}
	forged, _ := forgedToken(t, e)
	for text, reason := range map[string]string{"lk_" + strings.Repeat("A", 50): "invalid_request",
		forged: "not_found", "not a token": "invalid_request", "": "invalid_request"} {
		if _, err := e.client(writer).ReportLeak(ctx, text); reasonOf(err) == "" {
			t.Errorf("report of %q accepted", text)
		} else if r := reasonOf(err); r != reason {
			t.Errorf("report of %q: %s, want %s", text, r, reason)
		}
	}
	got, err := e.client(writer).ReportLeak(ctx, tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || got.Contractor != "alice" || !got.Revoked {
		t.Errorf("outcome: %+v", got)
	}
	if st, reason := e.call(t, "/billing/v1/x", tok.Token); st != 401 || reason != "token_revoked" {
		t.Errorf("gateway after the report: %d %s", st, reason)
	}
	again, err := e.client(writer).ReportLeak(ctx, tok.Token)
	if err != nil || again.Revoked || again.RevokedReason != store.RevokeLeaked {
		t.Errorf("second report: %+v %v", again, err)
	}
	// A leaked admin token is revoked too, whatever its scopes.
	root, err := e.client(e.root).Whoami(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.client(writer).ReportLeak(ctx, e.root); err != nil || got.ID != root.ID || !got.Revoked {
		t.Errorf("report of the admin:* token: %+v %v", got, err)
	}
	if _, err := e.client(e.root).Whoami(ctx); reasonOf(err) != "token_revoked" {
		t.Errorf("leaked admin token still works: %v", err)
	}
}

// forgedToken returns a well-formed token text whose id is stored (as
// token id, returned) with another secret's hash.
func forgedToken(t *testing.T, e *gwEnv) (text, id string) {
	t.Helper()
	text, p, err := token.Generate(token.Contractor, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	err = e.st.CreateToken(context.Background(), store.Token{ID: p.ID, Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"},
		Hash: [32]byte{1}, ExpiresAt: now.Add(time.Hour), CreatedAt: now, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return text, p.ID
}
