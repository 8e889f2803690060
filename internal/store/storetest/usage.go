package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"latchkey/internal/store"
)

func testOffboard(t *testing.T, s store.Store) {
	alice := mustContractor(t, s, "alice")
	bob := mustContractor(t, s, "bob")
	aActive := mustToken(t, s, token("lkc_a1", "alice", at(day), "wiki:read"))
	aExpired := mustToken(t, s, token("lkc_a2", "alice", at(-time.Hour), "wiki:read"))
	aRevoked := mustToken(t, s, token("lkc_a3", "alice", at(day), "wiki:read"))
	check(t, "RevokeToken", s.RevokeToken(ctx(t), aRevoked.ID, "lka_early", store.RevokeManual, at(-time.Minute)))
	aRevoked.RevokedAt, aRevoked.RevokedBy, aRevoked.RevokedReason = at(-time.Minute), "lka_early", store.RevokeManual
	gLive := mustGrant(t, s, grant("alice", at(day), "wiki:read"))
	gExpired := mustGrant(t, s, grant("alice", at(-time.Hour), "wiki:read"))
	gLive2 := mustGrant(t, s, grant("alice", at(2*day), "ci:run"))
	gRevoked := mustGrant(t, s, grant("alice", at(day), "git:read"))
	check(t, "RevokeGrant", s.RevokeGrant(ctx(t), gRevoked.ID, "lka_early", at(-time.Minute)))
	gRevoked.RevokedAt, gRevoked.RevokedBy = at(-time.Minute), "lka_early"
	bTok := mustToken(t, s, token("lkc_b1", "bob", at(day), "wiki:read"))
	bGrant := mustGrant(t, s, grant("bob", at(day), "wiki:read"))
	admin := mustToken(t, s, token("lka_1", "", at(day), "admin:*"))

	_, err := s.Offboard(ctx(t), "nobody", "lka_off", t0)
	wantErr(t, "Offboard unknown", err, store.ErrNotFound)

	off := at(time.Hour)
	res, err := s.Offboard(ctx(t), "alice", "lka_off", off)
	check(t, "Offboard", err)
	diff(t, "OffboardResult", store.OffboardResult{TokensRevoked: 2, GrantsRevoked: 3}, res)

	// Every unrevoked token and grant is revoked, expired or not; earlier
	// revocations stay as they were.
	alice.Disabled = true
	for _, tok := range []*store.Token{&aActive, &aExpired} {
		tok.RevokedAt, tok.RevokedBy, tok.RevokedReason = off, "lka_off", store.RevokeOffboarded
	}
	for _, g := range []*store.Grant{&gLive, &gExpired, &gLive2} {
		g.RevokedAt, g.RevokedBy = off, "lka_off"
	}
	verify := func(when string) {
		t.Helper()
		cs, err := s.Contractors(ctx(t))
		check(t, "Contractors", err)
		diff(t, "contractors "+when, []store.Contractor{alice, bob}, cs)
		toks, err := s.Tokens(ctx(t), store.TokenFilter{})
		check(t, "Tokens", err)
		diff(t, "tokens "+when, []store.Token{admin, aActive, aExpired, aRevoked, bTok}, toks)
		gs, err := s.Grants(ctx(t), store.GrantFilter{})
		check(t, "Grants", err)
		diff(t, "grants "+when, []store.Grant{gLive, gExpired, gLive2, gRevoked, bGrant}, gs)
	}
	verify("after offboarding")

	// Offboarding again is not an error and changes nothing.
	res, err = s.Offboard(ctx(t), "alice", "lka_again", at(2*time.Hour))
	check(t, "Offboard again", err)
	diff(t, "OffboardResult again", store.OffboardResult{}, res)
	verify("after offboarding again")
}

func testRecordUse(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	t1 := mustToken(t, s, token("lkc_1", "alice", at(day), "wiki:read"))
	t2 := mustToken(t, s, token("lkc_2", "alice", at(day), "wiki:read"))
	adm := mustToken(t, s, token("lka_1", "", at(day), "admin:*"))

	check(t, "RecordUse empty", s.RecordUse(ctx(t), nil))
	check(t, "RecordUse", s.RecordUse(ctx(t), []store.Use{
		{TokenID: t1.ID, At: at(time.Hour), Count: 3},
		{TokenID: t2.ID, At: at(2 * time.Hour), Count: 1},
		{TokenID: "lkc_unknown", At: at(time.Hour), Count: 5},
		{TokenID: t1.ID, At: at(30 * time.Minute), Count: 2}, // earlier: must not lower
		{TokenID: adm.ID, At: at(time.Hour), Count: 1},
	}))
	t1.Uses, t1.LastUsedAt = 5, at(time.Hour)
	t2.Uses, t2.LastUsedAt = 1, at(2*time.Hour)
	adm.Uses, adm.LastUsedAt = 1, at(time.Hour)
	for _, tok := range []store.Token{t1, t2, adm} {
		diff(t, "token after first batch", tok, getToken(t, s, tok.ID))
	}

	check(t, "RecordUse", s.RecordUse(ctx(t), []store.Use{
		{TokenID: t1.ID, At: at(10 * time.Minute), Count: 1},
		{TokenID: t2.ID, At: at(3 * time.Hour), Count: 4},
		{TokenID: adm.ID, Count: 2}, // no time: counted, no time changed
	}))
	t1.Uses = 6
	t2.Uses, t2.LastUsedAt = 5, at(3*time.Hour)
	adm.Uses = 3
	for _, tok := range []store.Token{t1, t2, adm} {
		diff(t, "token after second batch", tok, getToken(t, s, tok.ID))
	}
	_, err := s.Token(ctx(t), "lkc_unknown")
	wantErr(t, "unknown token after RecordUse", err, store.ErrNotFound)
}

func testRecordUseScopes(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "bob")
	ta := mustToken(t, s, token("lkc_a", "alice", at(day), "wiki:read", "git:read", "wiki:write"))
	ta2 := mustToken(t, s, token("lkc_a2", "alice", at(day), "wiki:read"))
	tb := mustToken(t, s, token("lkc_b", "bob", at(day), "wiki:read"))
	adm := mustToken(t, s, token("lka_1", "", at(day), "admin:*"))

	got, err := s.ScopeUses(ctx(t), time.Time{})
	check(t, "ScopeUses on empty store", err)
	diff(t, "ScopeUses on empty store", []store.ScopeUse(nil), got)

	check(t, "RecordUse", s.RecordUse(ctx(t), []store.Use{
		{TokenID: ta.ID, At: at(time.Hour), Count: 2, Scopes: []string{"wiki:read", "git:read"}},
		{TokenID: tb.ID, At: at(2 * time.Hour), Count: 1, Scopes: []string{"wiki:read"}},
		{TokenID: ta.ID, At: at(30 * time.Minute), Count: 1, Scopes: []string{"wiki:read"}},
		{TokenID: "lkc_unknown", At: at(5 * time.Hour), Count: 1, Scopes: []string{"wiki:read"}},
		{TokenID: adm.ID, At: at(5 * time.Hour), Count: 1, Scopes: []string{"admin:*"}}, // no contractor
	}))
	got, err = s.ScopeUses(ctx(t), time.Time{})
	check(t, "ScopeUses", err)
	diff(t, "ScopeUses after first batch", []store.ScopeUse{
		{Contractor: "alice", Scope: "git:read", LastUsedAt: at(time.Hour)},
		{Contractor: "alice", Scope: "wiki:read", LastUsedAt: at(time.Hour)},
		{Contractor: "bob", Scope: "wiki:read", LastUsedAt: at(2 * time.Hour)},
	}, got)
	check(t, "RecordUse", s.RecordUse(ctx(t), []store.Use{
		{TokenID: ta.ID, At: at(3 * time.Hour), Count: 1, Scopes: []string{"git:read"}},
		{TokenID: ta.ID, At: at(10 * time.Minute), Count: 1, Scopes: []string{"wiki:write"}},
		{TokenID: ta2.ID, At: at(4 * time.Hour), Count: 1, Scopes: []string{"wiki:read"}},
		{TokenID: tb.ID, Count: 1, Scopes: []string{"git:read"}}, // no time: no scope use
	}))

	all := []store.ScopeUse{
		{Contractor: "alice", Scope: "git:read", LastUsedAt: at(3 * time.Hour)},
		{Contractor: "alice", Scope: "wiki:read", LastUsedAt: at(4 * time.Hour)},
		{Contractor: "alice", Scope: "wiki:write", LastUsedAt: at(10 * time.Minute)},
		{Contractor: "bob", Scope: "wiki:read", LastUsedAt: at(2 * time.Hour)},
	}
	pick := func(i ...int) []store.ScopeUse {
		var out []store.ScopeUse
		for _, j := range i {
			out = append(out, all[j])
		}
		return out
	}
	tests := []struct {
		name  string
		since time.Time
		want  []store.ScopeUse
	}{
		{"zero", time.Time{}, all},
		{"before all", t0, all},
		{"just before", at(10*time.Minute - time.Millisecond), all},
		{"exactly at a use (excluded)", at(10 * time.Minute), pick(0, 1, 3)},
		{"middle", at(2*time.Hour + time.Millisecond), pick(0, 1)},
		{"late", at(3 * time.Hour), pick(1)},
		{"after all", at(4 * time.Hour), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ScopeUses(ctx(t), tc.since)
			check(t, "ScopeUses", err)
			diff(t, "ScopeUses", tc.want, got)
		})
	}
}

// testConcurrent creates tokens and records their use from several
// goroutines at once, with reads in between.
func testConcurrent(t *testing.T, s store.Store) {
	const workers, perWorker = 8, 10
	mustContractor(t, s, "alice")
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id := fmt.Sprintf("lkc_w%d_%02d", w, i)
				tok := token(id, "alice", at(day), "wiki:read")
				if err := s.CreateToken(ctx(t), tok); err != nil {
					t.Errorf("CreateToken %s: %v", id, err)
					return
				}
				use := store.Use{TokenID: id, At: at(time.Duration(i) * time.Second), Count: 1, Scopes: []string{"wiki:read"}}
				if err := s.RecordUse(ctx(t), []store.Use{use, use}); err != nil {
					t.Errorf("RecordUse %s: %v", id, err)
					return
				}
				if _, err := s.ActiveReport(ctx(t), t0); err != nil {
					t.Errorf("ActiveReport: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	toks, err := s.Tokens(ctx(t), store.TokenFilter{})
	check(t, "Tokens", err)
	if len(toks) != workers*perWorker {
		t.Fatalf("got %d tokens, want %d", len(toks), workers*perWorker)
	}
	for _, tok := range toks {
		if tok.Uses != 2 {
			t.Errorf("token %s: Uses = %d, want 2", tok.ID, tok.Uses)
		}
	}
	rows, err := s.ActiveReport(ctx(t), t0)
	check(t, "ActiveReport", err)
	if len(rows) != 1 || rows[0].Tokens != workers*perWorker {
		t.Errorf("ActiveReport = %+v, want one row with %d tokens", rows, workers*perWorker)
	}
}

func testConsumeUse(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	lim := token("lkc_lim", "alice", at(day), "wiki:read")
	lim.MaxUses = 2
	lim = mustToken(t, s, lim)
	free := mustToken(t, s, token("lkc_free", "alice", at(day), "wiki:read"))

	for want := int64(1); want <= 2; want++ {
		n, err := s.ConsumeUse(ctx(t), lim.ID, at(time.Duration(want)*time.Hour))
		check(t, "ConsumeUse", err)
		if n != want {
			t.Fatalf("ConsumeUse = %d, want %d", n, want)
		}
	}
	_, err := s.ConsumeUse(ctx(t), lim.ID, at(3*time.Hour))
	wantErr(t, "ConsumeUse past the limit", err, store.ErrExhausted)
	lim.Uses, lim.LastUsedAt = 2, at(2*time.Hour) // the refused use changed nothing
	diff(t, "token after its uses", lim, getToken(t, s, lim.ID))

	_, err = s.ConsumeUse(ctx(t), "lkc_unknown", at(time.Hour))
	wantErr(t, "ConsumeUse unknown", err, store.ErrNotFound)
	if _, err := s.ConsumeUse(ctx(t), free.ID, at(time.Hour)); err == nil {
		t.Fatal("ConsumeUse of a token without a limit succeeded")
	}
	diff(t, "unlimited token", free, getToken(t, s, free.ID))
	if _, err := s.ConsumeUse(ctx(t), lim.ID, time.Time{}); err == nil {
		t.Fatal("ConsumeUse at the zero time succeeded")
	}

	// Concurrent consumers never pass the limit.
	many := token("lkc_many", "alice", at(day), "wiki:read")
	many.MaxUses = 10
	mustToken(t, s, many)
	var wg sync.WaitGroup
	var ok, exhausted atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 5 {
				_, err := s.ConsumeUse(context.Background(), many.ID, at(time.Hour))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, store.ErrExhausted):
					exhausted.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 10 || exhausted.Load() != 30 {
		t.Fatalf("concurrent ConsumeUse: %d allowed, %d exhausted; want 10 and 30", ok.Load(), exhausted.Load())
	}
	if got := getToken(t, s, many.ID).Uses; got != 10 {
		t.Fatalf("Uses = %d after concurrent consumers, want 10", got)
	}
}
