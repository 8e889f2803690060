package storetest

import (
	"testing"
	"time"

	"latchkey/internal/store"
)

func testTokenRoundTrip(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	full := store.Token{
		ID:         "lkc_full",
		Contractor: "alice",
		Scopes:     []string{"wiki:read", "git:repo/x:write"},
		Hash:       [32]byte{0: 0, 1: 0xff, 15: 0x80, 31: 0x01},
		ExpiresAt:  at(30 * day),
		CIDRs:      []string{"10.0.0.0/8", "2001:db8::/32"},
		MaxUses:    1000,
		Uses:       7,
		Note:       "CI runner — ünïcode, 'quotes', \"double\"",
		CreatedAt:  at(-day),
		CreatedBy:  "lka_root",
		LastUsedAt: at(-time.Hour),
		RevokedAt:  at(-time.Minute),
		RevokedBy:  "lka_other",
		Parent:     "lkc_parent",
		CnfJKT:     "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
	}
	minimal := store.Token{ID: "lkc_min", Contractor: "alice", ExpiresAt: at(day)}
	admin := token("lka_admin", "", at(365*day), "admin:*")
	mtls := token("lkc_mtls", "alice", at(day), "wiki:read")
	mtls.CnfX5T = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"
	for _, tok := range []store.Token{full, minimal, admin, mtls} {
		mustToken(t, s, tok)
		diff(t, "Token "+tok.ID, tok, getToken(t, s, tok.ID))
	}
	all, err := s.Tokens(ctx(t), store.TokenFilter{})
	check(t, "Tokens", err)
	diff(t, "Tokens (ordered by CreatedAt, ID)", []store.Token{minimal, full, admin, mtls}, all)
}

func testTokenErrors(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "gone")
	offboard(t, s, "gone")
	orig := mustToken(t, s, token("lkc_1", "alice", at(day), "wiki:read"))
	admin := mustToken(t, s, token("lka_1", "", at(day), "admin:*"))

	dup := token("lkc_1", "alice", at(2*day), "git:read")
	dupAdmin := token("lka_1", "", at(2*day))
	tests := []struct {
		name string
		tok  store.Token
		want error
	}{
		{"duplicate id", dup, store.ErrConflict},
		{"duplicate admin id", dupAdmin, store.ErrConflict},
		{"unknown contractor", token("lkc_2", "nobody", at(day)), store.ErrNotFound},
		{"contractor token without contractor", store.Token{ID: "lkc_3", ExpiresAt: at(day)}, store.ErrNotFound},
		{"disabled contractor", token("lkc_4", "gone", at(day)), store.ErrDisabled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, "CreateToken", s.CreateToken(ctx(t), tc.tok), tc.want)
		})
	}
	diff(t, "token after refused duplicate", orig, getToken(t, s, "lkc_1"))
	diff(t, "admin token after refused duplicate", admin, getToken(t, s, "lka_1"))
	for _, id := range []string{"lkc_2", "lkc_3", "lkc_4", "nothing"} {
		_, err := s.Token(ctx(t), id)
		wantErr(t, "Token "+id, err, store.ErrNotFound)
	}
}

func testTokenFilter(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "bob")
	now := at(time.Hour)
	mk := func(id, contractor string, created, expires time.Time) store.Token {
		tok := token(id, contractor, expires, "wiki:read")
		tok.CreatedAt = created
		return tok
	}
	aActive := mk("lkc_a1", "alice", at(2*time.Minute), at(day))
	aExpired := mk("lkc_a2", "alice", at(time.Minute), now) // expires exactly now
	aRevoked := mk("lkc_a0", "alice", at(time.Minute), at(day))
	bActive := mk("lkc_b1", "bob", t0, now.Add(time.Millisecond))
	adm := mk("lka_x", "", at(3*time.Minute), at(day))
	admExpired := mk("lka_y", "", t0, at(time.Minute))
	// Stored out of order: the result order must come from the store.
	for _, tok := range []store.Token{adm, aExpired, bActive, aRevoked, admExpired, aActive} {
		mustToken(t, s, tok)
	}
	check(t, "RevokeToken", s.RevokeToken(ctx(t), aRevoked.ID, "lka_root", store.RevokeManual, at(time.Minute)))
	aRevoked.RevokedAt, aRevoked.RevokedBy, aRevoked.RevokedReason = at(time.Minute), "lka_root", store.RevokeManual

	yes, no := true, false
	tests := []struct {
		name string
		f    store.TokenFilter
		want []store.Token
	}{
		{"all", store.TokenFilter{}, []store.Token{admExpired, bActive, aRevoked, aExpired, aActive, adm}},
		{"contractor", store.TokenFilter{Contractor: "alice"}, []store.Token{aRevoked, aExpired, aActive}},
		{"active", store.TokenFilter{ActiveAt: now}, []store.Token{bActive, aActive, adm}},
		{"admin", store.TokenFilter{Admin: &yes}, []store.Token{admExpired, adm}},
		{"not admin", store.TokenFilter{Admin: &no}, []store.Token{bActive, aRevoked, aExpired, aActive}},
		{"contractor active", store.TokenFilter{Contractor: "alice", ActiveAt: now}, []store.Token{aActive}},
		{"admin active", store.TokenFilter{ActiveAt: now, Admin: &yes}, []store.Token{adm}},
		{"contractor admin", store.TokenFilter{Contractor: "alice", Admin: &yes}, nil},
		{"unknown contractor", store.TokenFilter{Contractor: "nobody"}, nil},
		{"active before", store.TokenFilter{ActiveAt: t0}, []store.Token{admExpired, bActive, aExpired, aActive, adm}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Tokens(ctx(t), tc.f)
			check(t, "Tokens", err)
			diff(t, "Tokens", tc.want, got)
			for _, tok := range got {
				if !tc.f.ActiveAt.IsZero() && !tok.Active(tc.f.ActiveAt) {
					t.Errorf("token %s is not Active at %v", tok.ID, tc.f.ActiveAt)
				}
			}
		})
	}
}

func testTokenRevoke(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	tok := mustToken(t, s, token("lkc_1", "alice", at(day), "wiki:read"))
	other := mustToken(t, s, token("lkc_2", "alice", at(day), "wiki:read"))
	admin := mustToken(t, s, token("lka_1", "", at(day), "admin:*"))

	wantErr(t, "RevokeToken unknown", s.RevokeToken(ctx(t), "nothing", "lka_root", store.RevokeManual, t0), store.ErrNotFound)

	check(t, "RevokeToken", s.RevokeToken(ctx(t), tok.ID, "lka_first", store.RevokeIdle, at(time.Minute)))
	tok.RevokedAt, tok.RevokedBy, tok.RevokedReason = at(time.Minute), "lka_first", store.RevokeIdle
	diff(t, "revoked token", tok, getToken(t, s, tok.ID))

	wantErr(t, "RevokeToken again", s.RevokeToken(ctx(t), tok.ID, "lka_second", store.RevokeManual, at(time.Hour)), store.ErrRevoked)
	diff(t, "token after second revoke (first revocation stays)", tok, getToken(t, s, tok.ID))
	diff(t, "other token untouched", other, getToken(t, s, other.ID))

	check(t, "RevokeToken admin", s.RevokeToken(ctx(t), admin.ID, "lka_root", store.RevokeManual, at(time.Minute)))
	admin.RevokedAt, admin.RevokedBy, admin.RevokedReason = at(time.Minute), "lka_root", store.RevokeManual
	diff(t, "revoked admin token", admin, getToken(t, s, admin.ID))
}

// successor is the token that replaces old in a rotation.
func successor(old store.Token, id string, expires time.Time) store.Token {
	next := token(id, old.Contractor, expires, old.Scopes...)
	next.Parent = old.ID
	next.CreatedAt = at(time.Hour)
	next.CIDRs = []string{"192.0.2.0/24"}
	next.Note = "rotated"
	return next
}

func testRotate(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	old := mustToken(t, s, token("lkc_old", "alice", at(30*day), "wiki:read"))

	next := successor(old, "lkc_next", at(60*day))
	check(t, "RotateToken", s.RotateToken(ctx(t), old.ID, at(day), next))
	old.ExpiresAt = at(day)
	diff(t, "old token after rotation (expiry shortened)", old, getToken(t, s, old.ID))
	diff(t, "next token", next, getToken(t, s, next.ID))

	// A later oldExpiresAt never extends the old token.
	third := successor(next, "lkc_third", at(90*day))
	check(t, "RotateToken", s.RotateToken(ctx(t), next.ID, at(90*day), third))
	diff(t, "old token after rotation with later expiry (unchanged)", next, getToken(t, s, next.ID))
	diff(t, "third token", third, getToken(t, s, third.ID))

	// Admin tokens rotate too.
	admin := mustToken(t, s, token("lka_old", "", at(30*day), "admin:*"))
	adminNext := successor(admin, "lka_next", at(60*day))
	check(t, "RotateToken admin", s.RotateToken(ctx(t), admin.ID, at(time.Hour), adminNext))
	admin.ExpiresAt = at(time.Hour)
	diff(t, "old admin token", admin, getToken(t, s, admin.ID))
	diff(t, "next admin token", adminNext, getToken(t, s, adminNext.ID))
}

func testRotateErrors(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "gone")
	revoked := mustToken(t, s, token("lkc_revoked", "alice", at(30*day), "wiki:read"))
	check(t, "RevokeToken", s.RevokeToken(ctx(t), revoked.ID, "lka_root", store.RevokeManual, t0))
	revoked = getToken(t, s, revoked.ID)
	gone := mustToken(t, s, token("lkc_gone", "gone", at(30*day), "wiki:read"))
	offboard(t, s, "gone")
	gone = getToken(t, s, gone.ID)
	live := mustToken(t, s, token("lkc_live", "alice", at(30*day), "wiki:read"))
	taken := mustToken(t, s, token("lkc_taken", "alice", at(30*day), "git:read"))

	tests := []struct {
		name string
		old  store.Token
		next store.Token
		want error
	}{
		{"unknown old token", store.Token{ID: "lkc_nothing"},
			successor(store.Token{ID: "lkc_nothing", Contractor: "alice"}, "lkc_n1", at(day)), store.ErrNotFound},
		{"revoked old token", revoked, successor(revoked, "lkc_n2", at(day)), store.ErrRevoked},
		{"disabled contractor", gone, successor(gone, "lkc_n3", at(day)), store.ErrDisabled},
		{"next id taken", live, successor(live, taken.ID, at(day)), store.ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.RotateToken(ctx(t), tc.old.ID, at(time.Minute), tc.next)
			wantErr(t, "RotateToken", err, tc.want)
			if tc.next.ID != taken.ID {
				_, err = s.Token(ctx(t), tc.next.ID)
				wantErr(t, "next token after refused rotation", err, store.ErrNotFound)
			}
			if tc.old.Contractor != "" || tc.old.Admin {
				diff(t, "old token after refused rotation", tc.old, getToken(t, s, tc.old.ID))
			}
		})
	}
	diff(t, "token whose id was taken", taken, getToken(t, s, taken.ID))
}
