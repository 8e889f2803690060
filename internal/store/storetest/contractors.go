package storetest

import (
	"testing"
	"time"

	"latchkey/internal/store"
)

func testContractors(t *testing.T, s store.Store) {
	got, err := s.Contractors(ctx(t))
	check(t, "Contractors on empty store", err)
	diff(t, "Contractors on empty store", []store.Contractor(nil), got)

	bob := mustContractor(t, s, "bob")
	alice := contractor("alice")
	alice.Company = ""
	check(t, "CreateContractor alice", s.CreateContractor(ctx(t), alice))
	carol := mustContractor(t, s, "carol")

	one, err := s.Contractor(ctx(t), "alice")
	check(t, "Contractor alice", err)
	diff(t, "Contractor alice", alice, one)

	all, err := s.Contractors(ctx(t))
	check(t, "Contractors", err)
	diff(t, "Contractors (ordered by name)", []store.Contractor{alice, bob, carol}, all)

	dup := contractor("bob")
	dup.Email = "other@example.com"
	wantErr(t, "CreateContractor duplicate", s.CreateContractor(ctx(t), dup), store.ErrConflict)
	one, err = s.Contractor(ctx(t), "bob")
	check(t, "Contractor bob", err)
	diff(t, "Contractor bob after refused duplicate", bob, one)

	_, err = s.Contractor(ctx(t), "nobody")
	wantErr(t, "Contractor unknown", err, store.ErrNotFound)
}

func testServices(t *testing.T, s store.Store) {
	got, err := s.Services(ctx(t))
	check(t, "Services on empty store", err)
	diff(t, "Services on empty store", []store.Service(nil), got)

	// Every byte value, and a NUL at both ends, must survive.
	sealed := make([]byte, 0, 258)
	sealed = append(sealed, 0)
	for i := range 256 {
		sealed = append(sealed, byte(i))
	}
	sealed = append(sealed, 0)
	wiki := store.Service{Name: "wiki", Upstream: "https://wiki.internal", SealedCredential: sealed,
		CreatedAt: t0, CreatedBy: "lka_root"}
	git := store.Service{Name: "git", Upstream: "http://git.internal:8080/base", SealedCredential: []byte{0xff},
		PrivateHeaders: []string{"Cookie", "X-Internal-User"}, CreatedAt: at(time.Minute), CreatedBy: "lka_other"}
	// A stored kind comes back as it went in; "" stays "".
	prod := store.Service{Name: "prod", Upstream: "https://10.0.0.1:6443", SealedCredential: []byte{1, 2},
		Kind: "kubernetes", CreatedAt: at(2 * time.Minute), CreatedBy: "lka_root"}
	check(t, "CreateService wiki", s.CreateService(ctx(t), wiki))
	check(t, "CreateService git", s.CreateService(ctx(t), git))
	check(t, "CreateService prod", s.CreateService(ctx(t), prod))
	one, err := s.Service(ctx(t), "prod")
	check(t, "Service prod", err)
	diff(t, "Service prod (kind kubernetes)", prod, one)

	one, err = s.Service(ctx(t), "wiki")
	check(t, "Service wiki", err)
	diff(t, "Service wiki", wiki, one)
	all, err := s.Services(ctx(t))
	check(t, "Services", err)
	diff(t, "Services (ordered by name)", []store.Service{git, prod, wiki}, all)

	dup := wiki
	dup.Upstream = "https://elsewhere"
	wantErr(t, "CreateService duplicate", s.CreateService(ctx(t), dup), store.ErrConflict)
	one, err = s.Service(ctx(t), "wiki")
	check(t, "Service wiki", err)
	diff(t, "Service wiki after refused duplicate", wiki, one)

	_, err = s.Service(ctx(t), "nothing")
	wantErr(t, "Service unknown", err, store.ErrNotFound)
}

// testTimes checks the time rules: millisecond precision, UTC, zero kept.
func testTimes(t *testing.T, s store.Store) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	precise := time.Date(2031, time.March, 4, 10, 36, 7, 123_456_789, zone)
	want := time.Date(2031, time.March, 4, 5, 6, 7, 123_000_000, time.UTC)

	c := contractor("alice")
	c.Until = precise
	c.CreatedAt = time.Time{}
	check(t, "CreateContractor", s.CreateContractor(ctx(t), c))
	got, err := s.Contractor(ctx(t), "alice")
	check(t, "Contractor", err)
	exactTime(t, "Contractor.Until", want, got.Until)
	exactTime(t, "Contractor.CreatedAt (zero)", time.Time{}, got.CreatedAt)

	tok := token("tok", "alice", precise.Add(24*time.Hour))
	tok.CreatedAt = want // already truncated: must come back equal
	check(t, "CreateToken", s.CreateToken(ctx(t), tok))
	gt := getToken(t, s, "tok")
	exactTime(t, "Token.ExpiresAt", want.Add(24*time.Hour), gt.ExpiresAt)
	exactTime(t, "Token.CreatedAt", want, gt.CreatedAt)
	exactTime(t, "Token.LastUsedAt (zero)", time.Time{}, gt.LastUsedAt)
	exactTime(t, "Token.RevokedAt (zero)", time.Time{}, gt.RevokedAt)

	// The Unix epoch is a time like any other, not the zero time.
	epoch := time.Unix(0, 0).UTC()
	check(t, "RecordUse at epoch", s.RecordUse(ctx(t), []store.Use{{TokenID: "tok", At: epoch, Count: 1}}))
	exactTime(t, "Token.LastUsedAt (epoch)", epoch, getToken(t, s, "tok").LastUsedAt)

	g, err := s.CreateGrant(ctx(t), grant("alice", precise))
	check(t, "CreateGrant", err)
	exactTime(t, "CreateGrant result ExpiresAt", want, g.ExpiresAt)
	exactTime(t, "CreateGrant result RevokedAt (zero)", time.Time{}, g.RevokedAt)
	g, err = s.Grant(ctx(t), g.ID)
	check(t, "Grant", err)
	exactTime(t, "Grant.ExpiresAt", want, g.ExpiresAt)
}

// exactTime fails t unless got is want to the nanosecond and in UTC.
func exactTime(t *testing.T, what string, want, got time.Time) {
	t.Helper()
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("%s = %v (%s), want %v (UTC)", what, got, got.Location(), want)
	}
}
