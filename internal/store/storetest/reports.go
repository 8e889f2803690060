package storetest

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"latchkey/internal/store"
)

func testActiveReport(t *testing.T, s store.Store) {
	alice := contractor("alice")
	alice.Until = at(40 * day)
	check(t, "CreateContractor", s.CreateContractor(ctx(t), alice))
	mustContractor(t, s, "bob")
	carol := mustContractor(t, s, "carol")
	mustContractor(t, s, "dave")
	mustContractor(t, s, "erin")
	now := at(time.Hour)
	used := func(tok store.Token, last time.Time) store.Token {
		tok.LastUsedAt = last
		return tok
	}
	mustToken(t, s, used(token("lkc_a1", "alice", at(10*day), "wiki:read"), at(30*time.Minute)))
	mustToken(t, s, token("lkc_a2", "alice", at(2*day), "wiki:read"))
	// Not active at now, with a later expiry or use that must not count.
	mustToken(t, s, used(token("lkc_a3", "alice", now, "wiki:read"), at(50*time.Minute)))
	mustToken(t, s, used(token("lkc_a4", "alice", at(100*day), "wiki:read"), at(55*time.Minute)))
	check(t, "RevokeToken", s.RevokeToken(ctx(t), "lkc_a4", "lka_root", store.RevokeManual, t0))
	mustToken(t, s, token("lkc_b1", "bob", at(time.Minute), "wiki:read"))
	mustToken(t, s, token("lkc_b2", "bob", at(day), "wiki:read"))
	check(t, "RevokeToken", s.RevokeToken(ctx(t), "lkc_b2", "lka_root", store.RevokeManual, t0))
	mustToken(t, s, token("lkc_c1", "carol", at(5*day), "wiki:read"))
	mustGrant(t, s, grant("dave", at(day), "wiki:read")) // grants do not count
	mustToken(t, s, token("lkc_e1", "erin", at(day), "wiki:read"))
	offboard(t, s, "erin")
	mustToken(t, s, used(token("lka_1", "", at(1000*day), "admin:*"), at(59*time.Minute)))

	aliceRow := store.ActiveRow{Contractor: "alice", Email: alice.Email, Sponsor: alice.Sponsor, Until: alice.Until,
		Tokens: 2, NextExpiry: at(2 * day), LatestExpiry: at(10 * day), LastUsedAt: at(30 * time.Minute)}
	carolRow := store.ActiveRow{Contractor: "carol", Email: carol.Email, Sponsor: carol.Sponsor, Until: carol.Until,
		Tokens: 1, NextExpiry: at(5 * day), LatestExpiry: at(5 * day)}
	aliceLater := aliceRow
	aliceLater.Tokens, aliceLater.NextExpiry = 1, at(10*day)
	tests := []struct {
		name string
		at   time.Time
		want []store.ActiveRow
	}{
		{"now", now, []store.ActiveRow{aliceRow, carolRow}},
		{"later", at(3 * day), []store.ActiveRow{aliceLater, carolRow}},
		{"after all", at(11 * day), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ActiveReport(ctx(t), tc.at)
			check(t, "ActiveReport", err)
			diff(t, "ActiveReport", tc.want, got)
		})
	}
}

func testAccessReport(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "bob")
	mustContractor(t, s, "carol")
	mustContractor(t, s, "dave")
	mustContractor(t, s, "erin")
	now := at(time.Hour)
	gA := mustGrant(t, s, grant("alice", at(day), "wiki:read", "git:read"))
	mustGrant(t, s, grant("alice", now, "admin:x")) // expires exactly now
	gAr := mustGrant(t, s, grant("alice", at(day), "db:write"))
	check(t, "RevokeGrant", s.RevokeGrant(ctx(t), gAr.ID, "lka_root", t0))
	tA2 := mustToken(t, s, token("lkc_a2", "alice", at(2*day), "wiki:read"))
	tA1 := mustToken(t, s, token("lkc_a1", "alice", at(3*day), "wiki:read", "ci:run"))
	mustToken(t, s, token("lkc_a3", "alice", at(-time.Minute), "git:write"))
	mustToken(t, s, token("lkc_a4", "alice", at(day), "db:read"))
	check(t, "RevokeToken", s.RevokeToken(ctx(t), "lkc_a4", "lka_root", store.RevokeManual, t0))
	gB := mustGrant(t, s, grant("bob", at(4*day), "wiki:read"))
	tB := mustToken(t, s, token("lkc_b1", "bob", at(5*day), "zz:top"))
	mustToken(t, s, token("lka_1", "", at(day), "admin:*"))
	tC := mustToken(t, s, token("lkc_c1", "carol", at(day), "wiki:read")) // a token, no grant
	gD := mustGrant(t, s, grant("dave", at(day), "wiki:read"))            // a grant, no token
	mustGrant(t, s, grant("erin", at(-time.Hour), "wiki:read"))           // nothing live

	gid := func(g store.Grant) string { return strconv.FormatInt(g.ID, 10) }
	alice := []store.AccessRow{
		{Contractor: "alice", Scope: "ci:run", Source: "token", ID: tA1.ID, Until: tA1.ExpiresAt},
		{Contractor: "alice", Scope: "git:read", Source: "grant", ID: gid(gA), Until: gA.ExpiresAt},
		{Contractor: "alice", Scope: "wiki:read", Source: "grant", ID: gid(gA), Until: gA.ExpiresAt},
		{Contractor: "alice", Scope: "wiki:read", Source: "token", ID: tA1.ID, Until: tA1.ExpiresAt},
		{Contractor: "alice", Scope: "wiki:read", Source: "token", ID: tA2.ID, Until: tA2.ExpiresAt},
	}
	bob := []store.AccessRow{
		{Contractor: "bob", Scope: "wiki:read", Source: "grant", ID: gid(gB), Until: gB.ExpiresAt},
		{Contractor: "bob", Scope: "zz:top", Source: "token", ID: tB.ID, Until: tB.ExpiresAt},
	}
	carol := []store.AccessRow{{Contractor: "carol", Scope: "wiki:read", Source: "token", ID: tC.ID, Until: tC.ExpiresAt}}
	dave := []store.AccessRow{{Contractor: "dave", Scope: "wiki:read", Source: "grant", ID: gid(gD), Until: gD.ExpiresAt}}
	tests := []struct {
		name       string
		contractor string
		at         time.Time
		want       []store.AccessRow
	}{
		{"all", "", now, slices.Concat(alice, bob, carol, dave)},
		{"alice", "alice", now, alice},
		{"bob", "bob", now, bob},
		{"token only", "carol", now, carol},
		{"grant only", "dave", now, dave},
		{"nothing live", "erin", now, nil},
		{"unknown contractor", "nobody", now, nil},
		{"later", "", at(4*day + time.Minute), bob[1:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.AccessReport(ctx(t), tc.contractor, tc.at)
			check(t, "AccessReport", err)
			diff(t, "AccessReport", tc.want, got)
		})
	}
}

func testUnusedTokens(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "bob")
	cutoff, now := at(-day), t0
	mk := func(id, contractor string, created, lastUsed time.Time) store.Token {
		tok := token(id, contractor, at(day), "wiki:read")
		tok.CreatedAt, tok.LastUsedAt = created, lastUsed
		if !lastUsed.IsZero() {
			tok.Uses = 3
		}
		return tok
	}
	old := at(-10 * day)
	u1 := mk("lkc_u1", "alice", old, time.Time{})
	u2 := mk("lkc_u2", "alice", old, at(-5*day))
	u3 := mk("lkc_u3", "alice", old, cutoff)         // used exactly at cutoff
	u4 := mk("lkc_u4", "alice", cutoff, time.Time{}) // created exactly at cutoff
	u5 := mk("lkc_u5", "alice", old, cutoff.Add(time.Millisecond))
	u6 := mk("lkc_u6", "alice", cutoff.Add(time.Millisecond), time.Time{})
	u7 := mk("lkc_u7", "alice", old, time.Time{})
	u7.ExpiresAt = now // expired at now
	u8 := mk("lkc_u8", "alice", old, time.Time{})
	u8.RevokedAt, u8.RevokedBy = at(-2*day), "lka_root"
	b := mk("lkc_a", "bob", old, time.Time{}) // sorts first by id, last by contractor
	adm := mk("lka_1", "", old, time.Time{})
	for _, tok := range []store.Token{u4, b, u2, u1, u3, u5, u6, u7, u8, adm} {
		mustToken(t, s, tok)
	}
	unused := func(ts ...store.Token) []store.UnusedToken {
		var out []store.UnusedToken
		for _, tok := range ts {
			out = append(out, store.UnusedToken{ID: tok.ID, Contractor: tok.Contractor, Scopes: tok.Scopes,
				ExpiresAt: tok.ExpiresAt, CreatedAt: tok.CreatedAt, LastUsedAt: tok.LastUsedAt, Note: tok.Note})
		}
		return out
	}
	tests := []struct {
		name        string
		cutoff, now time.Time
		want        []store.UnusedToken
	}{
		{"cutoff", cutoff, now, unused(u1, u2, u3, u4, b)},
		{"later cutoff", now, now, unused(u1, u2, u3, u4, u5, u6, b)},
		{"early cutoff", at(-6 * day), now, unused(u1, b)},
		{"before creation", at(-11 * day), now, nil},
		{"all expired", cutoff, at(day), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.UnusedTokens(ctx(t), tc.cutoff, tc.now)
			check(t, "UnusedTokens", err)
			diff(t, "UnusedTokens", tc.want, got)
		})
	}
}
