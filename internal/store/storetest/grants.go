package storetest

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"latchkey/internal/store"
)

func testGrantCreate(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "bob")
	in := []store.Grant{
		grant("alice", at(day), "wiki:read", "git:repo/x:write"),
		grant("bob", at(2*day), "wiki:read"),
		grant("alice", at(3*day)),
	}
	seen := map[int64]bool{}
	var want []store.Grant
	for i, g := range in {
		got, err := s.CreateGrant(ctx(t), g)
		check(t, "CreateGrant", err)
		if got.ID == 0 || seen[got.ID] {
			t.Fatalf("grant %d: ID %d is zero or reused (seen %v)", i, got.ID, seen)
		}
		seen[got.ID] = true
		g.ID = got.ID
		diff(t, "CreateGrant result", g, got)
		one, err := s.Grant(ctx(t), g.ID)
		check(t, "Grant", err)
		diff(t, "Grant", g, one)
		want = append(want, g)
	}
	// A grant may be stored already revoked; it keeps its revocation.
	revoked := grant("bob", at(day), "git:read")
	revoked.RevokedAt, revoked.RevokedBy = at(-time.Hour), "lka_root"
	revoked = mustGrant(t, s, revoked)
	want = append(want, revoked)

	slices.SortFunc(want, func(a, b store.Grant) int { return cmp.Compare(a.ID, b.ID) })
	all, err := s.Grants(ctx(t), store.GrantFilter{})
	check(t, "Grants", err)
	diff(t, "Grants (ordered by id)", want, all)
}

func testGrantErrors(t *testing.T, s store.Store) {
	mustContractor(t, s, "gone")
	offboard(t, s, "gone")
	tests := []struct {
		name string
		g    store.Grant
		want error
	}{
		{"unknown contractor", grant("nobody", at(day), "wiki:read"), store.ErrNotFound},
		{"empty contractor", grant("", at(day), "wiki:read"), store.ErrNotFound},
		{"disabled contractor", grant("gone", at(day), "wiki:read"), store.ErrDisabled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateGrant(ctx(t), tc.g)
			wantErr(t, "CreateGrant", err, tc.want)
		})
	}
	all, err := s.Grants(ctx(t), store.GrantFilter{})
	check(t, "Grants", err)
	diff(t, "Grants after refused creates", []store.Grant(nil), all)

	_, err = s.Grant(ctx(t), 12345)
	wantErr(t, "Grant unknown", err, store.ErrNotFound)
}

func testGrantFilter(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "bob")
	now := at(time.Hour)
	aLive := mustGrant(t, s, grant("alice", at(day), "wiki:read"))
	aExpired := mustGrant(t, s, grant("alice", at(-time.Minute), "wiki:read"))
	aEdge := mustGrant(t, s, grant("alice", now, "wiki:read")) // expires exactly now: not live
	aRevoked := mustGrant(t, s, grant("alice", at(day), "git:read"))
	check(t, "RevokeGrant", s.RevokeGrant(ctx(t), aRevoked.ID, "lka_root", at(time.Minute)))
	aRevoked.RevokedAt, aRevoked.RevokedBy = at(time.Minute), "lka_root"
	bLive := mustGrant(t, s, grant("bob", at(2*day), "wiki:read"))
	aJustLive := mustGrant(t, s, grant("alice", now.Add(time.Millisecond), "wiki:write"))

	tests := []struct {
		name string
		f    store.GrantFilter
		want []store.Grant
	}{
		{"all", store.GrantFilter{}, []store.Grant{aLive, aExpired, aEdge, aRevoked, bLive, aJustLive}},
		{"contractor", store.GrantFilter{Contractor: "alice"}, []store.Grant{aLive, aExpired, aEdge, aRevoked, aJustLive}},
		{"live", store.GrantFilter{LiveAt: now}, []store.Grant{aLive, bLive, aJustLive}},
		{"contractor live", store.GrantFilter{Contractor: "alice", LiveAt: now}, []store.Grant{aLive, aJustLive}},
		{"live later", store.GrantFilter{LiveAt: at(day + time.Hour)}, []store.Grant{bLive}},
		{"unknown contractor", store.GrantFilter{Contractor: "nobody"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Grants(ctx(t), tc.f)
			check(t, "Grants", err)
			slices.SortFunc(tc.want, func(a, b store.Grant) int { return cmp.Compare(a.ID, b.ID) })
			diff(t, "Grants", tc.want, got)
			for _, g := range got {
				if !tc.f.LiveAt.IsZero() && !g.Live(tc.f.LiveAt) {
					t.Errorf("grant %d is not Live at %v", g.ID, tc.f.LiveAt)
				}
			}
		})
	}
}

func testGrantRevoke(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	g := mustGrant(t, s, grant("alice", at(day), "wiki:read"))
	other := mustGrant(t, s, grant("alice", at(day), "git:read"))

	wantErr(t, "RevokeGrant unknown", s.RevokeGrant(ctx(t), g.ID+other.ID+100, "lka_root", t0), store.ErrNotFound)

	check(t, "RevokeGrant", s.RevokeGrant(ctx(t), g.ID, "lka_first", at(time.Minute)))
	g.RevokedAt, g.RevokedBy = at(time.Minute), "lka_first"
	got, err := s.Grant(ctx(t), g.ID)
	check(t, "Grant", err)
	diff(t, "revoked grant", g, got)

	wantErr(t, "RevokeGrant again", s.RevokeGrant(ctx(t), g.ID, "lka_second", at(time.Hour)), store.ErrRevoked)
	got, err = s.Grant(ctx(t), g.ID)
	check(t, "Grant", err)
	diff(t, "grant after second revoke (first revocation stays)", g, got)

	got, err = s.Grant(ctx(t), other.ID)
	check(t, "Grant", err)
	diff(t, "other grant untouched", other, got)
}
