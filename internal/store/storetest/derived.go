package storetest

import (
	"testing"
	"time"

	"latchkey/internal/store"
)

// child is a token derived from parent, created d after t0.
func child(id, parent, contractor string, d time.Duration) store.Token {
	c := token(id, contractor, at(day), "wiki:read")
	c.DerivedFrom, c.CreatedAt, c.CreatedBy = parent, at(d), parent
	return c
}

func mustDerive(t *testing.T, s store.Store, tok store.Token) store.Token {
	t.Helper()
	check(t, "CreateDerivedToken "+tok.ID, s.CreateDerivedToken(t.Context(), tok))
	return tok
}

// testDerive: a derived token is stored with its link and read back as
// stored; DerivedTokens walks the whole tree and leaves out revoked ones.
func testDerive(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustToken(t, s, token("lkc_root", "alice", at(2*day), "wiki:*"))
	a := mustDerive(t, s, child("lkc_a", "lkc_root", "alice", time.Second))
	b := mustDerive(t, s, child("lkc_b", "lkc_root", "alice", 2*time.Second))
	aa := mustDerive(t, s, child("lkc_aa", "lkc_a", "alice", 3*time.Second))
	diff(t, "Token lkc_aa", aa, getToken(t, s, "lkc_aa"))

	got, err := s.DerivedTokens(ctx(t), "lkc_root")
	check(t, "DerivedTokens", err)
	diff(t, "DerivedTokens(root)", []store.Token{a, b, aa}, got)
	got, err = s.DerivedTokens(ctx(t), "lkc_a")
	check(t, "DerivedTokens", err)
	diff(t, "DerivedTokens(a)", []store.Token{aa}, got)
	got, err = s.DerivedTokens(ctx(t), "lkc_nope")
	check(t, "DerivedTokens", err)
	diff(t, "DerivedTokens(unknown)", []store.Token(nil), got)

	check(t, "RevokeToken", s.RevokeToken(ctx(t), "lkc_b", "lka_root", store.RevokeManual, at(time.Hour)))
	got, err = s.DerivedTokens(ctx(t), "lkc_root")
	check(t, "DerivedTokens", err)
	diff(t, "DerivedTokens(root) after revoking b", []store.Token{a, aa}, got)
}

// testDeriveErrors: every refusal of CreateDerivedToken stores nothing.
func testDeriveErrors(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "bob")
	mustContractor(t, s, "gone")
	mustToken(t, s, token("lkc_alice", "alice", at(day), "wiki:*"))
	mustToken(t, s, token("lkc_bob", "bob", at(day), "wiki:*"))
	mustToken(t, s, token("lka_root", "", at(day), "admin:*"))
	mustToken(t, s, token("lkc_gone", "gone", at(day), "wiki:*"))
	offboard(t, s, "gone")
	mustToken(t, s, token("lkc_dead", "alice", at(day), "wiki:*"))
	check(t, "RevokeToken", s.RevokeToken(ctx(t), "lkc_dead", "lka_root", store.RevokeManual, at(time.Hour)))
	limited := token("lkc_lim", "alice", at(day), "wiki:*")
	limited.MaxUses, limited.Uses = 10, 4
	mustToken(t, s, limited)

	withUses := func(tok store.Token, n int64) store.Token { tok.MaxUses = n; return tok }
	tests := []struct {
		name string
		tok  store.Token
		want error // nil: any error
	}{
		{"unknown parent", child("lkc_1", "lkc_nope", "alice", 0), store.ErrNotFound},
		{"revoked parent", child("lkc_2", "lkc_dead", "alice", 0), store.ErrRevoked},
		{"disabled contractor", child("lkc_3", "lkc_gone", "gone", 0), store.ErrDisabled},
		{"no uses from a limited parent", child("lkc_4", "lkc_lim", "alice", 0), store.ErrExhausted},
		{"more uses than left", withUses(child("lkc_5", "lkc_lim", "alice", 0), 7), store.ErrExhausted},
		{"another contractor's parent", child("lkc_6", "lkc_bob", "alice", 0), nil},
		{"admin parent", child("lkc_7", "lka_root", "alice", 0), nil},
		{"no parent", child("lkc_8", "", "alice", 0), nil},
		{"duplicate id", child("lkc_alice", "lkc_alice", "alice", 0), store.ErrConflict},
	}
	for _, tc := range tests {
		err := s.CreateDerivedToken(ctx(t), tc.tok)
		if err == nil {
			t.Errorf("%s: CreateDerivedToken succeeded", tc.name)
			continue
		}
		if tc.want != nil {
			wantErr(t, tc.name, err, tc.want)
		}
		if tc.tok.ID != "lkc_alice" {
			if _, err := s.Token(ctx(t), tc.tok.ID); err == nil {
				t.Errorf("%s: token %s was stored", tc.name, tc.tok.ID)
			}
		}
	}
	if got := getToken(t, s, "lkc_lim").Uses; got != 4 {
		t.Errorf("after refusals, parent Uses = %d, want 4", got)
	}
}

// testDeriveUses: a child's uses are carved out of a limited parent.
func testDeriveUses(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	limited := token("lkc_lim", "alice", at(day), "wiki:*")
	limited.MaxUses, limited.Uses = 10, 4
	mustToken(t, s, limited)
	c := child("lkc_c", "lkc_lim", "alice", time.Second)
	c.MaxUses = 6
	mustDerive(t, s, c)
	if got := getToken(t, s, "lkc_lim").Uses; got != 10 {
		t.Errorf("parent Uses = %d, want 10 (4 used + 6 given to the child)", got)
	}
	c2 := child("lkc_c2", "lkc_lim", "alice", 2*time.Second)
	c2.MaxUses = 1
	wantErr(t, "derive from an exhausted parent", s.CreateDerivedToken(ctx(t), c2), store.ErrExhausted)
	// The child itself can be narrowed further: unlimited parents give any.
	free := mustToken(t, s, token("lkc_free", "alice", at(day), "wiki:*"))
	c3 := child("lkc_c3", free.ID, "alice", 3*time.Second)
	c3.MaxUses = 1000
	mustDerive(t, s, c3)
	if got := getToken(t, s, free.ID).Uses; got != 0 {
		t.Errorf("unlimited parent Uses = %d, want 0", got)
	}
}

// testRevokeTree: revoking a token revokes its descendants, and only
// them, in one go, with reason parent_revoked; the first revocation of an
// already revoked descendant stays as it was.
func testRevokeTree(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustToken(t, s, token("lkc_root", "alice", at(2*day), "wiki:*"))
	mustToken(t, s, token("lkc_other", "alice", at(2*day), "wiki:*"))
	mustDerive(t, s, child("lkc_a", "lkc_root", "alice", time.Second))
	mustDerive(t, s, child("lkc_b", "lkc_root", "alice", 2*time.Second))
	mustDerive(t, s, child("lkc_aa", "lkc_a", "alice", 3*time.Second))
	mustDerive(t, s, child("lkc_aaa", "lkc_aa", "alice", 4*time.Second))
	mustDerive(t, s, child("lkc_x", "lkc_other", "alice", 5*time.Second))
	check(t, "RevokeToken b", s.RevokeToken(ctx(t), "lkc_b", "lka_1", store.RevokeManual, at(time.Minute)))

	when := at(time.Hour)
	ids, err := s.RevokeTokenTree(ctx(t), "lkc_root", "lka_2", store.RevokeLeaked, when)
	check(t, "RevokeTokenTree", err)
	diff(t, "revoked descendants", []string{"lkc_a", "lkc_aa", "lkc_aaa"}, ids)

	root := getToken(t, s, "lkc_root")
	diff(t, "root revocation", []any{when, "lka_2", store.RevokeLeaked}, []any{root.RevokedAt, root.RevokedBy, root.RevokedReason})
	for _, id := range ids {
		c := getToken(t, s, id)
		diff(t, id+" revocation", []any{when, "lka_2", store.RevokeParent}, []any{c.RevokedAt, c.RevokedBy, c.RevokedReason})
	}
	b := getToken(t, s, "lkc_b")
	diff(t, "b keeps its first revocation", []any{at(time.Minute), "lka_1", store.RevokeManual}, []any{b.RevokedAt, b.RevokedBy, b.RevokedReason})
	if x := getToken(t, s, "lkc_x"); !x.RevokedAt.IsZero() {
		t.Errorf("a token derived from another token was revoked")
	}
	// Revocation is final, and a revoked parent cannot have new children.
	_, err = s.RevokeTokenTree(ctx(t), "lkc_root", "lka_2", store.RevokeManual, when)
	wantErr(t, "RevokeTokenTree again", err, store.ErrRevoked)
	_, err = s.RevokeTokenTree(ctx(t), "lkc_nope", "lka_2", store.RevokeManual, when)
	wantErr(t, "RevokeTokenTree unknown", err, store.ErrNotFound)
	wantErr(t, "derive from revoked", s.CreateDerivedToken(ctx(t), child("lkc_late", "lkc_a", "alice", 0)), store.ErrRevoked)
	// A token without descendants: an empty list.
	ids, err = s.RevokeTokenTree(ctx(t), "lkc_x", "lka_2", store.RevokeManual, when)
	check(t, "RevokeTokenTree leaf", err)
	diff(t, "leaf descendants", []string(nil), ids)
}

// testEndDerived: ending a token's descendants moves only later expiries,
// of unrevoked descendants.
func testEndDerived(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustToken(t, s, token("lkc_root", "alice", at(2*day), "wiki:*"))
	a := child("lkc_a", "lkc_root", "alice", time.Second) // expires at(day)
	mustDerive(t, s, a)
	early := child("lkc_early", "lkc_root", "alice", 2*time.Second)
	early.ExpiresAt = at(time.Hour)
	mustDerive(t, s, early)
	mustDerive(t, s, child("lkc_aa", "lkc_a", "alice", 3*time.Second))
	mustDerive(t, s, child("lkc_dead", "lkc_root", "alice", 4*time.Second))
	check(t, "RevokeToken", s.RevokeToken(ctx(t), "lkc_dead", "lka_1", store.RevokeManual, at(time.Minute)))

	end := at(2 * time.Hour)
	ids, err := s.EndDerivedTokens(ctx(t), "lkc_root", end)
	check(t, "EndDerivedTokens", err)
	diff(t, "ended", []string{"lkc_a", "lkc_aa"}, ids)
	for id, want := range map[string]time.Time{"lkc_a": end, "lkc_aa": end, "lkc_early": at(time.Hour), "lkc_dead": at(day), "lkc_root": at(2 * day)} {
		diff(t, id+" expiry", want, getToken(t, s, id).ExpiresAt)
	}
	ids, err = s.EndDerivedTokens(ctx(t), "lkc_nope", end)
	check(t, "EndDerivedTokens unknown", err)
	diff(t, "ended of unknown", []string(nil), ids)
}
