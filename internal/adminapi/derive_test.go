package adminapi_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/store"
	"latchkey/internal/token"
)

// TestDerive: a contractor narrows its own token; the child works at the
// gateway within its scopes, and shows its parent in the token list.
func TestDerive(t *testing.T) {
	e := newGWEnv(t, nil)
	ctx := context.Background()
	parent := e.issue(t, adminapi.NewToken{Scopes: []string{"billing:GET:/v1/**"}, TTL: "8h"})
	kid, err := e.client(parent.Token).Derive(ctx, adminapi.NewDerived{Scopes: []string{"billing:GET:/v1/x"}, TTL: "1h", Note: "ci job"})
	if err != nil {
		t.Fatal(err)
	}
	if kid.DerivedFrom != parent.ID || kid.Contractor != "alice" || kid.Kind != "contractor" {
		t.Errorf("derived token: %+v", kid)
	}
	if st, body := e.call(t, "/billing/v1/x", kid.Token); st != 200 {
		t.Errorf("child at the gateway: %d %s", st, body)
	}
	if st, reason := e.call(t, "/billing/v1/y", kid.Token); st != 403 || reason != "scope_denied" {
		t.Errorf("child outside its own scope: %d %s", st, reason)
	}
	list, err := e.client(e.root).Tokens(ctx, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, tk := range list {
		if tk.ID == kid.ID {
			found = tk.DerivedFrom == parent.ID && tk.CreatedBy == parent.ID
		}
	}
	if !found {
		t.Errorf("token list does not show %s derived from %s: %+v", kid.ID, parent.ID, list)
	}
	if ev := e.eventsOf(access.EventTokenIssued); ev[len(ev)-1].TokenID != kid.ID || ev[len(ev)-1].Actor != parent.ID {
		t.Errorf("issued events: %+v", ev)
	}
	// A child never outlives its parent: a longer TTL is cut.
	long, err := e.client(parent.Token).Derive(ctx, adminapi.NewDerived{Scopes: []string{"billing:GET:/v1/x"}, TTL: "9h"})
	if err != nil || !long.ExpiresAt.Equal(parent.ExpiresAt) {
		t.Errorf("derive 9h from an 8h token: expires %v (parent %v), %v", long.ExpiresAt, parent.ExpiresAt, err)
	}
}

// TestDeriveRefusals: every way a child could hold more than its parent
// is refused, and nothing is created.
func TestDeriveRefusals(t *testing.T) {
	e := newGWEnv(t, nil)
	ctx := context.Background()
	parent := e.issue(t, adminapi.NewToken{Scopes: []string{"billing:GET:/v1/**"}, TTL: "8h"})
	narrow := e.issue(t, adminapi.NewToken{Scopes: []string{"billing:GET:/v1/**"}, TTL: "8h", CIDRs: []string{"127.0.0.0/8"}, Uses: 5})
	revoked := e.issue(t, adminapi.NewToken{Scopes: []string{"billing:GET:/v1/**"}})
	if _, err := e.client(e.root).RevokeToken(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	ok := adminapi.NewDerived{Scopes: []string{"billing:GET:/v1/x"}, TTL: "1h"}
	with := func(f func(*adminapi.NewDerived)) adminapi.NewDerived { d := ok; f(&d); return d }
	tests := []struct {
		name, tok string
		req       adminapi.NewDerived
		reason    string
	}{
		{"scope outside the parent", parent.Token, with(func(d *adminapi.NewDerived) { d.Scopes = []string{"billing:HEAD:/v1/x"} }), "scope_not_covered"},
		{"wider path", parent.Token, with(func(d *adminapi.NewDerived) { d.Scopes = []string{"billing:GET:/**"} }), "scope_not_covered"},
		{"admin scope", parent.Token, with(func(d *adminapi.NewDerived) { d.Scopes = []string{"admin:*"} }), "invalid_request"},
		{"no scope", parent.Token, with(func(d *adminapi.NewDerived) { d.Scopes = nil }), "invalid_request"},
		{"ttl beyond the server maximum", parent.Token, with(func(d *adminapi.NewDerived) { d.TTL = "400d" }), "ttl_too_long"},
		{"no ttl", parent.Token, with(func(d *adminapi.NewDerived) { d.TTL = "" }), "ttl_missing"},
		{"bad ttl", parent.Token, with(func(d *adminapi.NewDerived) { d.TTL = "soon" }), "invalid_request"},
		{"negative uses", parent.Token, with(func(d *adminapi.NewDerived) { d.Uses = -1 }), "invalid_request"},
		{"bad cidr", parent.Token, with(func(d *adminapi.NewDerived) { d.CIDRs = []string{"10.0.0.1/8"} }), "invalid_request"},
		{"cidr outside the parent's", narrow.Token, with(func(d *adminapi.NewDerived) { d.CIDRs = []string{"10.0.0.0/8"}; d.Uses = 1 }), "forbidden"},
		{"wider cidr than the parent's", narrow.Token, with(func(d *adminapi.NewDerived) { d.CIDRs = []string{"0.0.0.0/0"}; d.Uses = 1 }), "forbidden"},
		{"unlimited from a limited parent", narrow.Token, ok, "invalid_request"},
		{"more uses than left", narrow.Token, with(func(d *adminapi.NewDerived) { d.Uses = 6 }), "forbidden"},
		{"admin token", e.root, ok, "forbidden"},
		{"revoked parent", revoked.Token, ok, "token_revoked"},
		{"no token", "", ok, "token_missing"},
	}
	for _, tc := range tests {
		_, err := e.client(tc.tok).Derive(ctx, tc.req)
		if got := reasonOf(err); got != tc.reason {
			t.Errorf("%s: %v (%s), want %s", tc.name, err, got, tc.reason)
		}
	}
	// A token with no service scope (say, one only for access requests)
	// cannot derive.
	text, p, err := token.Generate(token.Contractor, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := e.st.CreateToken(ctx, store.Token{ID: p.ID, Contractor: "alice", Hash: p.Hash(), Scopes: []string{"admin:tokens:read"},
		ExpiresAt: now.Add(time.Hour), CreatedAt: now, CreatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client(text).Derive(ctx, ok); reasonOf(err) != "forbidden" {
		t.Errorf("derive from a token without service scopes: %v", err)
	}
	kids, err := e.st.DerivedTokens(ctx, parent.ID)
	if err != nil || len(kids) != 0 {
		t.Errorf("refusals created tokens: %v %v", kids, err)
	}
	if n, _ := e.st.DerivedTokens(ctx, narrow.ID); len(n) != 0 {
		t.Errorf("refusals created tokens: %v", n)
	}
	// Uses are carved out of a limited parent: 5 = 3 + 2, then none left.
	c := e.client(narrow.Token)
	for _, n := range []int64{3, 2} {
		if _, err := c.Derive(ctx, with(func(d *adminapi.NewDerived) { d.Uses = n })); err != nil {
			t.Fatalf("derive %d uses: %v", n, err)
		}
	}
	if _, err := c.Derive(ctx, with(func(d *adminapi.NewDerived) { d.Uses = 1 })); reasonOf(err) != "forbidden" {
		t.Errorf("derive past the parent's uses: %v", err)
	}
}

// TestDeriveChain: chains are allowed up to their limit.
func TestDeriveChain(t *testing.T) {
	e := newGWEnv(t, nil)
	ctx := context.Background()
	tok := e.issue(t, adminapi.NewToken{Scopes: []string{"billing:GET:/v1/**"}}).Token
	for i := range 5 {
		kid, err := e.client(tok).Derive(ctx, adminapi.NewDerived{Scopes: []string{"billing:GET:/v1/**"}, TTL: "1h"})
		if i == 4 {
			if reasonOf(err) != "forbidden" {
				t.Errorf("link %d: %v, want forbidden", i+1, err)
			}
			break
		}
		if err != nil {
			t.Fatalf("link %d: %v", i+1, err)
		}
		tok = kid.Token
	}
}

// TestRevokeCascade: revoking a token revokes its children and theirs at
// once, each with reason parent_revoked and its own event; siblings of
// the revoked token are untouched.
func TestRevokeCascade(t *testing.T) {
	e := newGWEnv(t, nil)
	ctx := context.Background()
	parent := e.issue(t, adminapi.NewToken{Scopes: []string{"billing:GET:/v1/**"}})
	req := adminapi.NewDerived{Scopes: []string{"billing:GET:/v1/x"}, TTL: "1h"}
	kid, err := e.client(parent.Token).Derive(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	grandkid, err := e.client(kid.Token).Derive(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	sibling, err := e.client(parent.Token).Derive(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Warm the gateway's cache, then revoke the middle token.
	for _, tok := range []string{kid.Token, grandkid.Token, sibling.Token} {
		if st, body := e.call(t, "/billing/v1/x", tok); st != 200 {
			t.Fatalf("before revocation: %d %s", st, body)
		}
	}
	if _, err := e.client(e.root).RevokeToken(ctx, kid.ID); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{kid.Token, grandkid.Token} {
		if st, reason := e.call(t, "/billing/v1/x", tok); st != 401 || reason != "token_revoked" {
			t.Errorf("after revoking the parent: %d %s, want 401 token_revoked", st, reason)
		}
	}
	if st, _ := e.call(t, "/billing/v1/x", sibling.Token); st != 200 {
		t.Errorf("sibling stopped working: %d", st)
	}
	recs := e.audit(t, adminapi.AuditQuery{Token: grandkid.ID, Action: "token.revoke"})
	if len(recs) != 1 || recs[0].Decision != "allow" || recs[0].Reason != "parent_revoked: derived from "+kid.ID {
		t.Errorf("audit of the grandchild's revocation: %+v", recs)
	}
	g, err := e.st.Token(ctx, grandkid.ID)
	if err != nil || g.RevokedReason != store.RevokeParent {
		t.Errorf("grandchild: reason %q %v", g.RevokedReason, err)
	}
	revs := e.eventsOf(access.EventTokenRevoked)
	if len(revs) != 2 || revs[0].TokenID != kid.ID || revs[0].Reason != store.RevokeManual ||
		revs[1].TokenID != grandkid.ID || revs[1].Reason != store.RevokeParent || revs[1].Contractor != "alice" {
		t.Errorf("revoked events: %+v", revs)
	}
	// The revoked child can derive no more.
	if _, err := e.client(kid.Token).Derive(ctx, req); reasonOf(err) != "token_revoked" {
		t.Errorf("derive from a revoked token: %v", err)
	}
	// Revoking the root takes the sibling with it.
	if _, err := e.client(e.root).RevokeToken(ctx, parent.ID); err != nil {
		t.Fatal(err)
	}
	if st, reason := e.call(t, "/billing/v1/x", sibling.Token); st != 401 || reason != "token_revoked" {
		t.Errorf("sibling after revoking the root: %d %s", st, reason)
	}
}

// TestRotateDerived: a derived token never outlives its parent, through
// rotations: a rotated child's successor ends no later than the parent
// and stays derived from it; a rotated parent's children end with it.
func TestRotateDerived(t *testing.T) {
	e := newGWEnv(t, nil)
	ctx := context.Background()
	parent := e.issue(t, adminapi.NewToken{Scopes: []string{"billing:GET:/v1/**"}, TTL: "8h"})
	kid, err := e.client(parent.Token).Derive(ctx, adminapi.NewDerived{Scopes: []string{"billing:GET:/v1/x"}, TTL: "8h"})
	if err != nil {
		t.Fatal(err)
	}
	next, err := e.client(e.root).RotateToken(ctx, kid.ID, adminapi.Rotation{})
	if err != nil {
		t.Fatal(err)
	}
	if next.DerivedFrom != parent.ID || next.ExpiresAt.After(parent.ExpiresAt) {
		t.Errorf("successor of a derived token: derived from %q, expires %v (parent %v)", next.DerivedFrom, next.ExpiresAt, parent.ExpiresAt)
	}
	if st, body := e.call(t, "/billing/v1/x", next.Token); st != 200 {
		t.Fatalf("successor at the gateway: %d %s", st, body)
	}
	if _, err := e.client(e.root).RotateToken(ctx, parent.ID, adminapi.Rotation{}); err != nil {
		t.Fatal(err)
	}
	if st, reason := e.call(t, "/billing/v1/x", next.Token); st != 401 || reason != "token_expired" {
		t.Errorf("child after its parent was rotated: %d %s, want 401 token_expired", st, reason)
	}
	if recs := e.audit(t, adminapi.AuditQuery{Token: next.ID, Action: "token.end"}); len(recs) != 1 {
		t.Errorf("audit of the child's end: %+v", recs)
	}
}
