package storetest

import (
	"cmp"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"latchkey/internal/store"
)

// feed reads a store's invalidation feed from where it last read.
type feed struct {
	t    *testing.T
	s    store.Store
	last int64
}

// inval is an invalidation of token id of contractor; id "" for every
// token of the contractor.
func inval(id, contractor string) store.Invalidation {
	return store.Invalidation{TokenID: id, Contractor: contractor}
}

// want checks that the entries appended since the last call are want (in
// any order within the call: one write's entries are unordered), that
// their seqs follow on by one from the last seen, and that each has a
// time; then it moves past them.
func (f *feed) want(what string, want ...store.Invalidation) {
	f.t.Helper()
	got, err := f.s.Invalidations(ctx(f.t), f.last, 1000)
	check(f.t, what+": Invalidations", err)
	for i, in := range got {
		if in.Seq != f.last+int64(i)+1 {
			f.t.Errorf("%s: entry %d has seq %d, want %d", what, i, in.Seq, f.last+int64(i)+1)
		}
		if in.At.IsZero() {
			f.t.Errorf("%s: entry %d has no time", what, i)
		}
	}
	if len(got) > 0 {
		f.last = got[len(got)-1].Seq
	}
	byToken := func(a, b store.Invalidation) int { return cmp.Compare(a.TokenID, b.TokenID) }
	slices.SortFunc(got, byToken)
	slices.SortFunc(want, byToken)
	if d := gocmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(store.Invalidation{}, "Seq", "At")); d != "" {
		f.t.Errorf("%s: invalidations mismatch (-want +got):\n%s", what, d)
	}
	last, err := f.s.LastInvalidation(ctx(f.t))
	check(f.t, what+": LastInvalidation", err)
	if last != f.last {
		f.t.Errorf("%s: LastInvalidation = %d, want %d", what, last, f.last)
	}
}

// testInvalidationsTokens: revoking, rotating and ending tokens append one
// entry per token changed, in the same transaction; refused writes and
// writes that change no cached field append nothing.
func testInvalidationsTokens(t *testing.T, s store.Store) {
	f := &feed{t: t, s: s}
	mustContractor(t, s, "alice")
	mustContractor(t, s, "gone")
	offboard(t, s, "gone")
	f.want("setup", inval("", "gone"))
	mustToken(t, s, token("lkc_1", "alice", at(day), "wiki:read"))
	mustToken(t, s, token("lkc_2", "alice", at(day), "wiki:read"))
	mustToken(t, s, token("lka_1", "", at(day), "admin:*"))
	lim := token("lkc_lim", "alice", at(day), "wiki:read")
	lim.MaxUses = 5
	mustToken(t, s, lim)
	mustGrant(t, s, grant("alice", at(day), "wiki:read"))
	check(t, "RecordUse", s.RecordUse(ctx(t), []store.Use{{TokenID: "lkc_1", At: at(time.Minute), Count: 1, Scopes: []string{"wiki:read"}}}))
	_, err := s.ConsumeUse(ctx(t), "lkc_lim", at(time.Minute))
	check(t, "ConsumeUse", err)
	_, err = s.ClaimExpiryNotice(ctx(t), "lkc_1", at(time.Minute))
	check(t, "ClaimExpiryNotice", err)
	f.want("creates, uses and notices")

	check(t, "RevokeToken", s.RevokeToken(ctx(t), "lkc_1", "lka_root", store.RevokeManual, at(time.Hour)))
	f.want("RevokeToken", inval("lkc_1", "alice"))
	check(t, "RevokeToken admin", s.RevokeToken(ctx(t), "lka_1", "lka_root", store.RevokeManual, at(time.Hour)))
	f.want("RevokeToken admin", inval("lka_1", ""))
	wantErr(t, "RevokeToken again", s.RevokeToken(ctx(t), "lkc_1", "lka_root", store.RevokeManual, at(time.Hour)), store.ErrRevoked)
	wantErr(t, "RevokeToken unknown", s.RevokeToken(ctx(t), "lkc_nope", "lka_root", store.RevokeManual, at(time.Hour)), store.ErrNotFound)
	f.want("refused revocations")

	next := token("lkc_3", "alice", at(2*day), "wiki:read")
	next.Parent = "lkc_2"
	check(t, "RotateToken", s.RotateToken(ctx(t), "lkc_2", at(time.Hour), next))
	f.want("RotateToken", inval("lkc_2", "alice"))
	again := token("lkc_4", "alice", at(2*day), "wiki:read")
	again.Parent = "lkc_1"
	wantErr(t, "RotateToken revoked", s.RotateToken(ctx(t), "lkc_1", at(time.Hour), again), store.ErrRevoked)
	dup := token("lkc_3", "alice", at(2*day), "wiki:read")
	dup.Parent = "lkc_2"
	wantErr(t, "RotateToken to a taken id", s.RotateToken(ctx(t), "lkc_2", at(time.Hour), dup), store.ErrConflict)
	f.want("refused rotations")

	mustDerive(t, s, child("lkc_a", "lkc_3", "alice", time.Second))
	mustDerive(t, s, child("lkc_aa", "lkc_a", "alice", 2*time.Second))
	mustDerive(t, s, child("lkc_b", "lkc_3", "alice", 3*time.Second))
	f.want("CreateDerivedToken")
	ids, err := s.EndDerivedTokens(ctx(t), "lkc_3", at(time.Hour))
	check(t, "EndDerivedTokens", err)
	diff(t, "ended", []string{"lkc_a", "lkc_aa", "lkc_b"}, ids)
	f.want("EndDerivedTokens", inval("lkc_a", "alice"), inval("lkc_aa", "alice"), inval("lkc_b", "alice"))
	_, err = s.EndDerivedTokens(ctx(t), "lkc_3", at(2*time.Hour))
	check(t, "EndDerivedTokens, none later", err)
	f.want("EndDerivedTokens changing nothing")

	check(t, "RevokeToken b", s.RevokeToken(ctx(t), "lkc_b", "lka_root", store.RevokeManual, at(time.Hour)))
	f.want("RevokeToken b", inval("lkc_b", "alice"))
	_, err = s.RevokeTokenTree(ctx(t), "lkc_3", "lka_root", store.RevokeLeaked, at(time.Hour))
	check(t, "RevokeTokenTree", err)
	f.want("RevokeTokenTree", inval("lkc_3", "alice"), inval("lkc_a", "alice"), inval("lkc_aa", "alice"))
	_, err = s.RevokeTokenTree(ctx(t), "lkc_3", "lka_root", store.RevokeLeaked, at(time.Hour))
	wantErr(t, "RevokeTokenTree again", err, store.ErrRevoked)
	_, err = s.RevokeTokenTree(ctx(t), "lkc_nope", "lka_root", store.RevokeLeaked, at(time.Hour))
	wantErr(t, "RevokeTokenTree unknown", err, store.ErrNotFound)
	f.want("refused tree revocations")
}

// testInvalidationsContractors: offboarding and ending an engagement
// append one entry for every token of the contractor; refused ones append
// nothing.
func testInvalidationsContractors(t *testing.T, s store.Store) {
	f := &feed{t: t, s: s}
	mustContractor(t, s, "alice")
	mustContractor(t, s, "bob")
	mustToken(t, s, token("lkc_a", "alice", at(day), "wiki:read"))
	mustToken(t, s, token("lkc_b", "bob", at(day), "wiki:read"))

	offboard(t, s, "alice")
	f.want("Offboard", inval("", "alice"))
	offboard(t, s, "alice")
	f.want("Offboard of a disabled contractor (revokes what is left)", inval("", "alice"))
	_, err := s.Offboard(ctx(t), "nobody", "lka_root", at(time.Hour))
	wantErr(t, "Offboard unknown", err, store.ErrNotFound)
	f.want("Offboard unknown")

	_, err = s.EndEngagement(ctx(t), "bob", "sweeper", at(time.Hour))
	check(t, "EndEngagement", err)
	f.want("EndEngagement", inval("", "bob"))
	_, err = s.EndEngagement(ctx(t), "bob", "sweeper", at(time.Hour))
	wantErr(t, "EndEngagement again", err, store.ErrDisabled)
	_, err = s.EndEngagement(ctx(t), "nobody", "sweeper", at(time.Hour))
	wantErr(t, "EndEngagement unknown", err, store.ErrNotFound)
	f.want("refused EndEngagement")
}

// testInvalidationsRead: Invalidations pages by seq; pruning deletes by
// the time entries were written (the store's clock) and never lowers
// LastInvalidation nor lets a seq be reused.
func testInvalidationsRead(t *testing.T, s store.Store) {
	last, err := s.LastInvalidation(ctx(t))
	check(t, "LastInvalidation of an empty feed", err)
	diff(t, "LastInvalidation of an empty feed", int64(0), last)
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		mustContractor(t, s, name)
		offboard(t, s, name)
	}
	all, err := s.Invalidations(ctx(t), 0, 100)
	check(t, "Invalidations", err)
	if len(all) != 5 {
		t.Fatalf("Invalidations: got %d entries, want 5", len(all))
	}
	page, err := s.Invalidations(ctx(t), all[1].Seq, 2)
	check(t, "Invalidations page", err)
	diff(t, "page after the second, of 2", all[2:4], page)
	page, err = s.Invalidations(ctx(t), all[4].Seq, 10)
	check(t, "Invalidations after the last", err)
	diff(t, "page after the last", []store.Invalidation(nil), page)

	n, err := s.PruneInvalidations(ctx(t), time.Now().Add(-time.Hour))
	check(t, "PruneInvalidations an hour ago", err)
	diff(t, "pruned before an hour ago", 0, n)
	n, err = s.PruneInvalidations(ctx(t), time.Now().Add(time.Minute))
	check(t, "PruneInvalidations", err)
	diff(t, "pruned", 5, n)
	page, err = s.Invalidations(ctx(t), 0, 10)
	check(t, "Invalidations after pruning", err)
	diff(t, "left after pruning", []store.Invalidation(nil), page)
	last, err = s.LastInvalidation(ctx(t))
	check(t, "LastInvalidation after pruning", err)
	diff(t, "LastInvalidation after pruning", all[4].Seq, last)

	mustContractor(t, s, "f")
	offboard(t, s, "f")
	page, err = s.Invalidations(ctx(t), 0, 10)
	check(t, "Invalidations after pruning and a write", err)
	if len(page) != 1 || page[0].Seq != all[4].Seq+1 {
		t.Errorf("after pruning, the next entry is %+v, want seq %d", page, all[4].Seq+1)
	}
}
