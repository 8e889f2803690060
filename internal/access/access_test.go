package access_test

import (
	"context"
	"errors"
	"hash/crc32"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/seal"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
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

type env struct {
	a       *access.Authority
	st      *sqlite.Store
	log     *audit.Log
	storage *sqlite.AuditStorage
	clock   *clock
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e, err := openEnv(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close(); e.st.Close() })
	return e
}

// openEnv opens a store and an Authority in dir, at a fixed time.
func openEnv(dir string) (*env, error) {
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "latchkey.db"))
	if err != nil {
		return nil, err
	}
	key, err := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	if err != nil {
		return nil, err
	}
	box, err := seal.New(key)
	if err != nil {
		return nil, err
	}
	c := &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	storage := st.Audit(sqlite.SyncNormal)
	log := audit.New(storage, audit.Config{})
	a, err := access.New(access.Config{Store: st, Box: box, Now: c.Now, Audit: log})
	if err != nil {
		return nil, err
	}
	return &env{a: a, st: st, log: log, storage: storage, clock: c}, nil
}

// seed adds service billing, contractor alice (60 days) with a grant
// billing:read:/v1/** for 20 days.
func (e *env) seed(t testing.TB) store.Grant {
	t.Helper()
	ctx := context.Background()
	if _, err := e.a.AddService(ctx, root, "billing", "http://127.0.0.1:9", []access.Header{{"Authorization", "Bearer up-secret"}}); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	if _, err := e.a.AddContractor(ctx, root, access.NewContractor{Name: "alice", Email: "alice@example.com", Sponsor: "bob", Until: now.Add(60 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	g, err := e.a.AddGrant(ctx, root, "alice", []string{"billing:read:/v1/**"}, now.Add(20*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// snapshot is everything in the store, to check a refusal changed nothing.
type snapshot struct {
	Contractors []store.Contractor
	Services    []store.Service
	Grants      []store.Grant
	Tokens      []store.Token
}

func (e *env) snapshot(t testing.TB) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	if s.Contractors, err = e.st.Contractors(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Services, err = e.st.Services(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Grants, err = e.st.Grants(ctx, store.GrantFilter{}); err != nil {
		t.Fatal(err)
	}
	if s.Tokens, err = e.st.Tokens(ctx, store.TokenFilter{}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIssueRefusals(t *testing.T) {
	e := newEnv(t)
	g := e.seed(t)
	ctx := context.Background()
	if _, err := e.a.AddContractor(ctx, root, access.NewContractor{Name: "gone", Email: "g@example.com", Sponsor: "bob", Until: e.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Offboard(ctx, root, "gone"); err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	tests := []struct {
		name   string
		req    access.IssueRequest
		reason string
		msg    string
	}{
		{"no ttl", access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}}, access.ReasonTTLMissing, "--ttl is required"},
		{"negative ttl", access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: -time.Hour}, access.ReasonInvalid, "negative"},
		{"ttl over max", access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: 31 * day}, access.ReasonTTLTooLong, "maximum token lifetime"},
		{"past grant", access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: 25 * day}, access.ReasonPastGrant, "grant " + itoa(g.ID)},
		{"scope not covered", access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:POST:/v1/x"}, TTL: time.Hour}, access.ReasonScopeNotCovered, `"billing:POST:/v1/x"`},
		{"path not covered", access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v2/x"}, TTL: time.Hour}, access.ReasonScopeNotCovered, "/v2/x"},
		{"bad scope", access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:v1"}, TTL: time.Hour}, access.ReasonInvalid, "invalid scope"},
		{"no scopes", access.IssueRequest{Contractor: "alice", TTL: time.Hour}, access.ReasonInvalid, "--scope"},
		{"admin scope to contractor", access.IssueRequest{Contractor: "alice", Scopes: []string{"admin:*"}, TTL: time.Hour}, access.ReasonInvalid, "admin scope"},
		{"unknown service", access.IssueRequest{Contractor: "alice", Scopes: []string{"crm:GET:/x"}, TTL: time.Hour}, access.ReasonNotFound, `service "crm"`},
		{"unknown contractor", access.IssueRequest{Contractor: "mallory", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour}, access.ReasonNotFound, `contractor "mallory"`},
		{"disabled contractor", access.IssueRequest{Contractor: "gone", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour}, access.ReasonContractorDisabled, "disabled"},
		{"bad cidr", access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour, CIDRs: []string{"10.0.0.300/8"}}, access.ReasonInvalid, "invalid CIDR"},
		{"cidr host bits", access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour, CIDRs: []string{"10.0.0.1/8"}}, access.ReasonInvalid, "10.0.0.0/8"},
		{"negative uses", access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour, MaxUses: -1}, access.ReasonInvalid, "negative"},
		{"admin without power", access.IssueRequest{Admin: true, Scopes: []string{"billing:GET:/x"}, TTL: time.Hour}, access.ReasonInvalid, "not an admin scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snapshot(t)
			_, err := e.a.Issue(ctx, root, tt.req)
			if got := access.ReasonOf(err); got != tt.reason || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Issue err = %v (reason %q), want reason %q containing %q", err, got, tt.reason, tt.msg)
			}
			if diff := cmp.Diff(before, e.snapshot(t)); diff != "" {
				t.Fatalf("refused issue changed the store (-before +after):\n%s", diff)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestIssuePastEngagement(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.seed(t)
	if _, err := e.a.AddContractor(ctx, root, access.NewContractor{Name: "carol", Email: "c@example.com", Sponsor: "bob", Until: e.clock.Now().Add(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.AddGrant(ctx, root, "carol", []string{"billing:*:/**"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "carol", Scopes: []string{"billing:GET:/a"}, TTL: 72 * time.Hour})
	if access.ReasonOf(err) != access.ReasonPastEngagement || !strings.Contains(err.Error(), "engagement end") {
		t.Fatalf("err = %v, want expiry_past_engagement", err)
	}
	_, err = e.a.AddGrant(ctx, root, "carol", []string{"billing:*:/**"}, e.clock.Now().Add(72*time.Hour))
	if access.ReasonOf(err) != access.ReasonPastEngagement {
		t.Fatalf("grant past engagement: err = %v", err)
	}
}

func TestIssueAuthenticateRevoke(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET,HEAD,OPTIONS:/v1/invoices/*"}, TTL: 8 * time.Hour, CIDRs: []string{"10.1.0.0/16"}, Note: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	if got := iss.Token.Scopes; !cmp.Equal(got, []string{"billing:read:/v1/invoices/*"}) {
		t.Fatalf("scopes not canonical: %v", got)
	}
	inside := netip.MustParseAddr("10.1.2.3")
	tok, set, err := e.a.Authenticate(ctx, iss.Text, inside)
	if err != nil || tok.ID != iss.Token.ID || len(set) != 1 {
		t.Fatalf("Authenticate = %v, %v, %v", tok.ID, set, err)
	}
	if _, _, err := e.a.Authenticate(ctx, iss.Text, netip.MustParseAddr("::ffff:10.1.9.9")); err != nil {
		t.Fatalf("IPv4-mapped source inside the CIDR refused: %v", err)
	}
	for _, src := range []netip.Addr{{}, netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("2001:db8::1")} {
		if _, _, err := e.a.Authenticate(ctx, iss.Text, src); access.ReasonOf(err) != access.ReasonSourceDenied {
			t.Fatalf("source %v: err = %v, want source_denied", src, err)
		}
	}
	// A token with the right id but another secret is unknown.
	forged := iss.Text[:len(iss.Text)-40] + strings.Repeat("A", 34)
	if _, _, err := e.a.Authenticate(ctx, forged, netip.Addr{}); access.ReasonOf(err) == "" {
		t.Fatalf("forged token accepted: %v", err)
	}
	if err := e.a.Revoke(ctx, root, iss.Token.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.a.Authenticate(ctx, iss.Text, inside); access.ReasonOf(err) != access.ReasonRevoked {
		t.Fatalf("revoked token: err = %v, want token_revoked at once", err)
	}
	if err := e.a.Revoke(ctx, root, iss.Token.ID); access.ReasonOf(err) != access.ReasonRevoked || !errors.Is(err, store.ErrRevoked) {
		t.Fatalf("second revoke: err = %v", err)
	}
	if _, err := e.a.Rotate(ctx, root, iss.Token.ID, 0); access.ReasonOf(err) != access.ReasonRevoked {
		t.Fatalf("rotate of a revoked token: err = %v", err)
	}
}

func TestAuthenticateRejects(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, text, reason string
	}{
		{"empty", "", access.ReasonMalformed},
		{"garbage", "hello", access.ReasonMalformed},
		{"bad checksum", iss.Text[:len(iss.Text)-1] + flip(iss.Text[len(iss.Text)-1]), access.ReasonMalformed},
		{"unknown id", "lk_" + strings.Repeat("0", 44) + "000000", access.ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := e.a.Authenticate(ctx, tt.text, netip.Addr{})
			if got := access.ReasonOf(err); got != tt.reason && !(tt.name == "unknown id" && got == access.ReasonUnknown) {
				t.Fatalf("reason = %q (%v), want %q", got, err, tt.reason)
			}
			if err != nil && tt.text != "" && strings.Contains(err.Error(), tt.text) {
				t.Fatal("error echoes the token text")
			}
		})
	}
	e.clock.Add(time.Hour)
	if _, _, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{}); access.ReasonOf(err) != access.ReasonExpired {
		t.Fatalf("expired: err = %v", err)
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestRotate(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	old, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: 8 * time.Hour, MaxUses: 5})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Hour)
	next, err := e.a.Rotate(ctx, root, old.Token.ID, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if next.Token.Parent != old.Token.ID || !cmp.Equal(next.Token.Scopes, old.Token.Scopes) || next.Token.MaxUses != 5 {
		t.Fatalf("successor = %+v", next.Token)
	}
	if want := e.clock.Now().Add(8 * time.Hour); !next.Token.ExpiresAt.Equal(want) {
		t.Fatalf("successor expires %v, want %v", next.Token.ExpiresAt, want)
	}
	if _, _, err := e.a.Authenticate(ctx, old.Text, netip.Addr{}); err != nil {
		t.Fatalf("old token refused within the grace: %v", err)
	}
	e.clock.Add(10 * time.Minute)
	if _, _, err := e.a.Authenticate(ctx, old.Text, netip.Addr{}); access.ReasonOf(err) != access.ReasonExpired {
		t.Fatalf("old token after the grace: err = %v", err)
	}
	if _, _, err := e.a.Authenticate(ctx, next.Text, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Rotate(ctx, root, old.Token.ID, 0); access.ReasonOf(err) != access.ReasonExpired {
		t.Fatalf("rotate of an expired token: err = %v", err)
	}
}

func TestOffboard(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	var texts []string
	for range 3 {
		iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, iss.Text)
		if _, _, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{}); err != nil { // warm the cache
			t.Fatal(err)
		}
	}
	res, err := e.a.Offboard(ctx, root, "alice")
	if err != nil || res.TokensRevoked != 3 || res.GrantsRevoked != 1 {
		t.Fatalf("Offboard = %+v, %v", res, err)
	}
	for _, text := range texts {
		if _, _, err := e.a.Authenticate(ctx, text, netip.Addr{}); access.ReasonOf(err) != access.ReasonRevoked {
			t.Fatalf("token of offboarded contractor: err = %v", err)
		}
	}
	if _, err := e.a.Offboard(ctx, root, "nobody"); access.ReasonOf(err) != access.ReasonNotFound {
		t.Fatalf("offboard unknown: err = %v", err)
	}
}

func TestAdminTokens(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	auditor, err := e.a.Issue(ctx, root, access.IssueRequest{Admin: true, Scopes: []string{"admin:reports:read", "admin:tokens:read"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tok, set, err := e.a.Authenticate(ctx, auditor.Text, netip.Addr{})
	if err != nil || !tok.Admin {
		t.Fatal(err)
	}
	by := access.Actor{TokenID: tok.ID, Scopes: set}
	_, err = e.a.Issue(ctx, by, access.IssueRequest{Admin: true, Scopes: []string{"admin:tokens:write"}, TTL: time.Hour})
	if access.ReasonOf(err) != access.ReasonScopeNotCovered {
		t.Fatalf("escalation: err = %v", err)
	}
	if _, err := e.a.Issue(ctx, by, access.IssueRequest{Admin: true, Scopes: []string{"admin:reports:read"}, TTL: time.Hour}); err != nil {
		t.Fatalf("narrower admin token refused: %v", err)
	}
	if _, err := e.a.Issue(ctx, root, access.IssueRequest{Admin: true, Scopes: []string{"admin:*"}}); access.ReasonOf(err) != access.ReasonTTLMissing {
		t.Fatalf("admin token without ttl: err = %v", err)
	}
}

func TestServiceCredentialSealed(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	svc, err := e.a.Service(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(svc.SealedCredential), "up-secret") {
		t.Fatal("credential stored in plain text")
	}
	hs, err := e.a.Credential(svc)
	if err != nil || !cmp.Equal(hs, []access.Header{{"Authorization", "Bearer up-secret"}}) {
		t.Fatalf("Credential = %v, %v", hs, err)
	}
	bad := []struct {
		name, upstream string
		hs             []access.Header
	}{
		{"Billing", "http://x", nil},
		{"admin", "http://x", nil},
		{"crm", "ftp://x", nil},
		{"crm", "http://user:pw@x", nil},
		{"crm", "/relative", nil},
		{"crm", "http://x", []access.Header{{"Bad Header", "v"}}},
		{"crm", "http://x", []access.Header{{"X-Key", "a\r\nInjected: 1"}}},
		{"billing", "http://x", nil},
	}
	for _, b := range bad {
		before := e.snapshot(t)
		_, err := e.a.AddService(ctx, root, b.name, b.upstream, b.hs)
		if access.ReasonOf(err) == "" {
			t.Errorf("AddService(%q, %q) err = %v, want a refusal", b.name, b.upstream, err)
		}
		if err != nil && strings.Contains(err.Error(), "Injected") {
			t.Errorf("error echoes a credential value: %v", err)
		}
		if diff := cmp.Diff(before, e.snapshot(t)); diff != "" {
			t.Errorf("refused AddService changed the store:\n%s", diff)
		}
	}
}

func TestContractorRefusals(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	now := e.clock.Now()
	bad := []access.NewContractor{
		{Name: "Bob", Email: "b@example.com", Sponsor: "s", Until: now.Add(time.Hour)},
		{Name: "bob", Email: "not an email", Sponsor: "s", Until: now.Add(time.Hour)},
		{Name: "bob", Email: "Bob <b@example.com>", Sponsor: "s", Until: now.Add(time.Hour)},
		{Name: "bob", Email: "b@example.com", Sponsor: "", Until: now.Add(time.Hour)},
		{Name: "bob", Email: "b@example.com", Sponsor: "s", Until: now.Add(-time.Hour)},
		{Name: "bob", Email: "b@example.com", Sponsor: "s\n", Until: now.Add(time.Hour)},
		{Name: "alice", Email: "a2@example.com", Sponsor: "s", Until: now.Add(time.Hour)},
	}
	for _, nc := range bad {
		before := e.snapshot(t)
		if _, err := e.a.AddContractor(ctx, root, nc); access.ReasonOf(err) == "" {
			t.Errorf("AddContractor(%+v) err = %v, want a refusal", nc, err)
		}
		if diff := cmp.Diff(before, e.snapshot(t)); diff != "" {
			t.Errorf("refused AddContractor changed the store:\n%s", diff)
		}
	}
}

func TestUnusedScopes(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	if _, err := e.a.AddGrant(ctx, root, "alice", []string{"billing:write:/v1/**"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/invoices"}, TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(3 * time.Hour)
	if err := e.st.RecordUse(ctx, []store.Use{{TokenID: iss.Token.ID, At: e.clock.Now(), Count: 1, Scopes: iss.Token.Scopes}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Hour)
	toks, scopes, err := e.a.Unused(ctx, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 0 {
		t.Fatalf("used token reported unused: %+v", toks)
	}
	if len(scopes) != 1 || scopes[0].Scope != "billing:write:/v1/**" {
		t.Fatalf("unused scopes = %+v, want only the write grant", scopes)
	}
	e.clock.Add(3 * time.Hour)
	toks, scopes, err = e.a.Unused(ctx, 2*time.Hour)
	if err != nil || len(toks) != 1 || len(scopes) != 2 {
		t.Fatalf("after idle: tokens %d scopes %d err %v", len(toks), len(scopes), err)
	}
	if _, _, err := e.a.Unused(ctx, 0); access.ReasonOf(err) != access.ReasonInvalid {
		t.Fatalf("idle 0: err = %v", err)
	}
}

func TestAdminTokenLimits(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	parent, err := e.a.Issue(ctx, root, access.IssueRequest{Admin: true, Scopes: []string{"admin:tokens:*"}, TTL: time.Hour, CIDRs: []string{"10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("10.0.0.1")
	tok, set, err := e.a.Authenticate(ctx, parent.Text, src)
	if err != nil {
		t.Fatal(err)
	}
	by := access.Actor{TokenID: tok.ID, Scopes: set, ExpiresAt: tok.ExpiresAt, CIDRs: tok.CIDRs}

	child, err := e.a.Issue(ctx, by, access.IssueRequest{Admin: true, Scopes: []string{"admin:tokens:read"}, TTL: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !child.Token.ExpiresAt.Equal(tok.ExpiresAt) || !cmp.Equal(child.Token.CIDRs, []string{"10.0.0.0/8"}) {
		t.Fatalf("child expires %v with CIDRs %v; want capped at %v and inheriting 10.0.0.0/8", child.Token.ExpiresAt, child.Token.CIDRs, tok.ExpiresAt)
	}
	if _, err := e.a.Issue(ctx, by, access.IssueRequest{Admin: true, Scopes: []string{"admin:tokens:read"}, TTL: time.Hour, CIDRs: []string{"0.0.0.0/0"}}); access.ReasonOf(err) != access.ReasonForbidden {
		t.Fatalf("wider CIDR: err = %v", err)
	}
	if _, err := e.a.Issue(ctx, by, access.IssueRequest{Admin: true, Scopes: []string{"admin:tokens:read"}, TTL: time.Hour, CIDRs: []string{"10.1.0.0/16"}}); err != nil {
		t.Fatalf("narrower CIDR refused: %v", err)
	}
	if _, err := e.a.Issue(ctx, by, access.IssueRequest{Admin: true, Scopes: []string{"admin:tokens:read"}, TTL: time.Hour, MaxUses: 1}); access.ReasonOf(err) != access.ReasonInvalid {
		t.Fatalf("admin token with a use limit: err = %v", err)
	}
	// A tokens:* admin cannot revoke or rotate the more powerful root token.
	rootTok, err := e.a.Issue(ctx, root, access.IssueRequest{Admin: true, Scopes: []string{"admin:*"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.Revoke(ctx, by, rootTok.Token.ID); access.ReasonOf(err) != access.ReasonScopeNotCovered {
		t.Fatalf("revoke of a broader admin token: err = %v", err)
	}
	if _, err := e.a.Rotate(ctx, by, rootTok.Token.ID, 0); access.ReasonOf(err) != access.ReasonScopeNotCovered {
		t.Fatalf("rotate of a broader admin token: err = %v", err)
	}
	if err := e.a.Revoke(ctx, by, child.Token.ID); err != nil {
		t.Fatalf("revoke of a narrower admin token: %v", err)
	}
}

// TestPrefixBoundToKind: an admin token's body under the contractor
// prefix, with a valid checksum, is not the admin token.
func TestPrefixBoundToKind(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	adm, err := e.a.Issue(ctx, root, access.IssueRequest{Admin: true, Scopes: []string{"admin:*"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimPrefix(adm.Text, "lka_")[:44]
	forged := "lk_" + body + checksum("lk_"+body)
	if _, _, err := e.a.Authenticate(ctx, forged, netip.Addr{}); access.ReasonOf(err) != access.ReasonUnknown {
		t.Fatalf("re-prefixed admin token: err = %v, want token_unknown", err)
	}
}

// checksum is the token format's 6-character base62 CRC32.
func checksum(s string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	n := crc32.ChecksumIEEE([]byte(s))
	out := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		out[i] = alphabet[n%62]
		n /= 62
	}
	return string(out)
}

// TestOffboardInvalidatesEverywhere: other caches hear of every token of
// an offboarded contractor, not only those this process had cached.
func TestOffboardInvalidatesEverywhere(t *testing.T) {
	dir := t.TempDir()
	e, err := openEnv(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { e.log.Close(); e.st.Close() }()
	var mu sync.Mutex
	var heard []string
	key, _ := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	box, _ := seal.New(key)
	e.a, err = access.New(access.Config{Store: e.st, Box: box, Now: e.clock.Now, Audit: e.log, Invalidate: func(id string) {
		mu.Lock()
		heard = append(heard, id)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.seed(t)
	ctx := context.Background()
	var ids []string
	for range 3 {
		iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, iss.Token.ID)
	}
	if _, err := e.a.Offboard(ctx, root, "alice"); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	slices.Sort(heard)
	if !slices.Equal(ids, heard) {
		t.Fatalf("invalidated %v, want every token %v", heard, ids)
	}
}
