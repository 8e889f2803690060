package storetest

import (
	"sync"
	"testing"
	"time"

	"latchkey/internal/store"
)

// Conformance tests of the policy and sweeper methods (issue 5).

func testPolicies(t *testing.T, s store.Store) {
	srv := store.Policy{Level: store.PolicyServer, DefaultTTL: 8 * time.Hour, MaxTTL: 7 * day,
		Approval: store.ApprovalNone, UpdatedAt: t0, UpdatedBy: "lka_root"}
	svc := store.Policy{Level: store.PolicyService, Name: "billing", Idle: 3 * day, MaxGrant: 30 * day,
		Approval: store.ApprovalRequired, UpdatedAt: at(time.Second), UpdatedBy: "lka_root"}
	con := store.Policy{Level: store.PolicyContractor, Name: "alice", MaxTTL: time.Hour, UpdatedAt: t0, UpdatedBy: "lka_x"}
	for _, p := range []store.Policy{con, svc, srv} {
		check(t, "SetPolicy", s.SetPolicy(ctx(t), p))
	}
	got, err := s.Policies(ctx(t))
	check(t, "Policies", err)
	diff(t, "Policies (ordered by level, name)", []store.Policy{con, srv, svc}, got)

	// Replacing keeps one row; an empty policy removes the row.
	con.MaxTTL, con.Idle = 0, time.Minute
	check(t, "SetPolicy replace", s.SetPolicy(ctx(t), con))
	check(t, "SetPolicy empty", s.SetPolicy(ctx(t), store.Policy{Level: store.PolicyService, Name: "billing", UpdatedBy: "x"}))
	got, err = s.Policies(ctx(t))
	check(t, "Policies", err)
	diff(t, "Policies after replace and removal", []store.Policy{con, srv}, got)

	if err := s.SetPolicy(ctx(t), store.Policy{Level: "planet", MaxTTL: time.Hour}); err == nil {
		t.Errorf("SetPolicy with an unknown level: no error")
	}
}

func testLease(t *testing.T, s store.Store) {
	ok, err := s.AcquireLease(ctx(t), "sweep", "a", t0, at(time.Minute))
	check(t, "AcquireLease a", err)
	if !ok {
		t.Fatalf("a could not take a free lease")
	}
	steps := []struct {
		holder string
		now    time.Time
		want   bool
	}{
		{"b", at(30 * time.Second), false},  // held by a
		{"a", at(40 * time.Second), true},   // a renews, until +100s
		{"b", at(90 * time.Second), false},  // still a's
		{"b", at(100 * time.Second), true},  // expired: b takes it
		{"a", at(101 * time.Second), false}, // b's now
		{"b", at(102 * time.Second), true},  // b renews
	}
	for _, st := range steps {
		ok, err := s.AcquireLease(ctx(t), "sweep", st.holder, st.now, st.now.Add(time.Minute))
		check(t, "AcquireLease", err)
		if ok != st.want {
			t.Errorf("AcquireLease(%s at %v) = %v, want %v", st.holder, st.now.Sub(t0), ok, st.want)
		}
	}
	// Another lease name is independent.
	if ok, err := s.AcquireLease(ctx(t), "other", "a", at(103*time.Second), at(time.Hour)); err != nil || !ok {
		t.Errorf("AcquireLease(other) = %v, %v; want true", ok, err)
	}
}

func testClaim(t *testing.T, s store.Store) {
	steps := []struct {
		key, holder string
		now, stale  time.Time
		want        bool
	}{
		{"revoke:x", "a", t0, at(-time.Hour), true},
		{"revoke:x", "b", at(time.Second), at(-time.Hour), false},
		{"revoke:x", "a", at(time.Second), at(-time.Hour), false}, // even its own holder: a claim is once
		{"revoke:y", "b", at(time.Second), at(-time.Hour), true},
		{"revoke:x", "b", at(2 * time.Hour), at(time.Hour), true}, // stale: taken over
	}
	for _, st := range steps {
		ok, err := s.Claim(ctx(t), st.key, st.holder, st.now, st.stale)
		check(t, "Claim", err)
		if ok != st.want {
			t.Errorf("Claim(%s, %s) = %v, want %v", st.key, st.holder, ok, st.want)
		}
	}
	// Concurrent claims: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan bool, 8)
	for i := range 8 {
		wg.Go(func() {
			ok, err := s.Claim(ctx(t), "race", string(rune('a'+i)), t0, at(-time.Hour))
			if err != nil {
				t.Errorf("Claim: %v", err)
			}
			wins <- ok
		})
	}
	wg.Wait()
	close(wins)
	n := 0
	for ok := range wins {
		if ok {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d concurrent claims won, want 1", n)
	}
}

func testEndEngagement(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustContractor(t, s, "bob")
	mustToken(t, s, token("a1", "alice", at(day), "wiki:read"))
	old := mustToken(t, s, token("a2", "alice", at(day), "wiki:read"))
	check(t, "RevokeToken", s.RevokeToken(ctx(t), old.ID, "lka_root", store.RevokeManual, at(time.Minute)))
	mustToken(t, s, token("b1", "bob", at(day), "wiki:read"))
	mustGrant(t, s, grant("alice", at(day), "wiki:read"))

	res, err := s.EndEngagement(ctx(t), "alice", "latchkey-sweeper", at(time.Hour))
	check(t, "EndEngagement", err)
	diff(t, "EndEngagement result", store.OffboardResult{TokensRevoked: 1, GrantsRevoked: 1}, res)
	a1 := getToken(t, s, "a1")
	if a1.RevokedReason != store.RevokeEngagementEnd || a1.RevokedBy != "latchkey-sweeper" || !a1.RevokedAt.Equal(at(time.Hour)) {
		t.Errorf("a1 after EndEngagement: reason %q by %q at %v", a1.RevokedReason, a1.RevokedBy, a1.RevokedAt)
	}
	if a2 := getToken(t, s, "a2"); a2.RevokedReason != store.RevokeManual {
		t.Errorf("a2 was revoked before: reason changed to %q", a2.RevokedReason)
	}
	if b1 := getToken(t, s, "b1"); !b1.RevokedAt.IsZero() {
		t.Errorf("bob's token revoked by alice's engagement end")
	}
	c, err := s.Contractor(ctx(t), "alice")
	check(t, "Contractor", err)
	if !c.Disabled {
		t.Errorf("alice not disabled")
	}
	_, err = s.EndEngagement(ctx(t), "alice", "latchkey-sweeper", at(2*time.Hour))
	wantErr(t, "EndEngagement again", err, store.ErrDisabled)
	_, err = s.EndEngagement(ctx(t), "nobody", "latchkey-sweeper", at(2*time.Hour))
	wantErr(t, "EndEngagement unknown", err, store.ErrNotFound)
}

func testRotatedTokens(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustToken(t, s, token("old1", "alice", at(30*day), "wiki:read"))
	mustToken(t, s, token("old2", "alice", at(30*day), "wiki:read"))
	mustToken(t, s, token("lone", "alice", at(time.Minute), "wiki:read")) // expired, no successor
	next := func(id, parent string) store.Token {
		n := token(id, "alice", at(30*day), "wiki:read")
		n.Parent = parent
		return n
	}
	check(t, "RotateToken old1", s.RotateToken(ctx(t), "old1", at(time.Hour), next("new1", "old1")))
	check(t, "RotateToken old2", s.RotateToken(ctx(t), "old2", at(3*time.Hour), next("new2", "old2")))

	ids := func(when time.Time) []string {
		ts, err := s.RotatedTokens(ctx(t), when)
		check(t, "RotatedTokens", err)
		var out []string
		for _, tok := range ts {
			out = append(out, tok.ID)
		}
		return out
	}
	diff(t, "RotatedTokens during the graces", []string(nil), ids(at(time.Hour-time.Millisecond)))
	diff(t, "RotatedTokens after the first grace", []string{"old1"}, ids(at(time.Hour)))
	diff(t, "RotatedTokens after both", []string{"old1", "old2"}, ids(at(4*time.Hour)))
	check(t, "RevokeToken", s.RevokeToken(ctx(t), "old1", "latchkey-sweeper", store.RevokeRotated, at(4*time.Hour)))
	diff(t, "RotatedTokens after revoking old1", []string{"old2"}, ids(at(4*time.Hour)))
	if got := getToken(t, s, "old1").RevokedReason; got != store.RevokeRotated {
		t.Errorf("old1 reason %q, want %q", got, store.RevokeRotated)
	}
}

func testExpiryNotice(t *testing.T, s store.Store) {
	mustContractor(t, s, "alice")
	mustToken(t, s, token("soon", "alice", at(2*time.Hour), "wiki:read"))
	mustToken(t, s, token("sooner", "alice", at(time.Hour), "wiki:read"))
	mustToken(t, s, token("later", "alice", at(3*day), "wiki:read"))
	mustToken(t, s, token("admin", "", at(time.Hour), "admin:*"))
	mustToken(t, s, token("rotated", "alice", at(3*day), "wiki:read"))
	succ := token("succ", "alice", at(3*day), "wiki:read")
	succ.Parent = "rotated"
	check(t, "RotateToken", s.RotateToken(ctx(t), "rotated", at(time.Hour), succ))
	gone := mustToken(t, s, token("gone", "alice", at(time.Hour), "wiki:read"))
	check(t, "RevokeToken", s.RevokeToken(ctx(t), gone.ID, "x", store.RevokeManual, t0))

	ids := func() []string {
		ts, err := s.ExpiringTokens(ctx(t), t0, at(day))
		check(t, "ExpiringTokens", err)
		var out []string
		for _, tok := range ts {
			out = append(out, tok.ID)
		}
		return out
	}
	diff(t, "ExpiringTokens", []string{"sooner", "soon"}, ids())
	for i, want := range []bool{true, false} {
		ok, err := s.ClaimExpiryNotice(ctx(t), "sooner", at(time.Duration(i)*time.Second))
		check(t, "ClaimExpiryNotice", err)
		if ok != want {
			t.Errorf("ClaimExpiryNotice #%d = %v, want %v", i+1, ok, want)
		}
	}
	diff(t, "ExpiringTokens after a claim", []string{"soon"}, ids())
	_, err := s.ClaimExpiryNotice(ctx(t), "nothing", t0)
	wantErr(t, "ClaimExpiryNotice unknown", err, store.ErrNotFound)
	// Expired tokens are not expiring.
	ts, err := s.ExpiringTokens(ctx(t), at(2*time.Hour), at(day))
	check(t, "ExpiringTokens later", err)
	if len(ts) != 0 {
		t.Errorf("ExpiringTokens once expired = %d tokens, want 0", len(ts))
	}
}
