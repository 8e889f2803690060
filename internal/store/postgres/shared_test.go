package postgres_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"latchkey/internal/store"
	"latchkey/internal/store/postgres"
	"latchkey/internal/store/postgres/pgtest"
)

// The tests in this file open two Stores on one database, as two
// processes sharing it would: each has its own pool and sessions.

var t0 = time.Date(2031, time.March, 4, 5, 6, 7, 890_000_000, time.UTC)

func twoStores(t *testing.T) (a, b *postgres.Store) {
	dsn := pgtest.DSN(t)
	a, b = openStore(t, dsn), openStore(t, dsn)
	if err := a.CreateContractor(t.Context(), store.Contractor{Name: "alice", Email: "a@example.com", Until: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func createToken(t *testing.T, s *postgres.Store, id string, maxUses int64) {
	t.Helper()
	tok := store.Token{ID: id, Contractor: "alice", Scopes: []string{"wiki:read"}, Hash: sha256.Sum256([]byte(id)),
		ExpiresAt: t0.Add(time.Hour), CreatedAt: t0, MaxUses: maxUses}
	if err := s.CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
}

// TestSharedRevoke: of concurrent revocations of one token from two
// processes exactly one succeeds, the others get ErrRevoked; and the
// invalidation feed has one entry per revoked token, numbered 1..n in
// commit order without gaps.
func TestSharedRevoke(t *testing.T) {
	a, b := twoStores(t)
	const tokens, racers = 20, 6
	for i := range tokens {
		createToken(t, a, fmt.Sprintf("tok%02d", i), 0)
	}
	var wins, lost atomic.Int64
	var wg sync.WaitGroup
	for i := range tokens {
		for r := range racers {
			s := a
			if r%2 == 1 {
				s = b
			}
			wg.Go(func() {
				err := s.RevokeToken(t.Context(), fmt.Sprintf("tok%02d", i), "admin", store.RevokeManual, t0)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, store.ErrRevoked):
					lost.Add(1)
				default:
					t.Errorf("RevokeToken: %v", err)
				}
			})
		}
	}
	wg.Wait()
	if wins.Load() != tokens || lost.Load() != tokens*(racers-1) {
		t.Fatalf("%d revocations succeeded and %d were refused, want %d and %d", wins.Load(), lost.Load(), tokens, tokens*(racers-1))
	}
	feed, err := b.Invalidations(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, in := range feed {
		if in.Seq != int64(i+1) || seen[in.TokenID] {
			t.Fatalf("feed entry %d: %+v (seq must be %d, each token once)", i, in, i+1)
		}
		seen[in.TokenID] = true
	}
	if len(feed) != tokens {
		t.Fatalf("feed has %d entries, want %d", len(feed), tokens)
	}
	if last, err := a.LastInvalidation(t.Context()); err != nil || last != tokens {
		t.Fatalf("LastInvalidation = %d, %v, want %d", last, err, tokens)
	}
}

// TestSharedConsumeUse: two processes consuming one limited token never
// pass its limit, and every use under it is counted once.
func TestSharedConsumeUse(t *testing.T) {
	a, b := twoStores(t)
	const limit = 25
	createToken(t, a, "limited", limit)
	var ok, exhausted atomic.Int64
	var wg sync.WaitGroup
	for w := range 10 {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for range 5 {
				_, err := s.ConsumeUse(t.Context(), "limited", t0)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, store.ErrExhausted):
					exhausted.Add(1)
				default:
					t.Errorf("ConsumeUse: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != limit || exhausted.Load() != 50-limit {
		t.Fatalf("%d uses allowed, %d refused; want %d and %d", ok.Load(), exhausted.Load(), limit, 50-limit)
	}
	tok, err := b.Token(t.Context(), "limited")
	if err != nil || tok.Uses != limit {
		t.Fatalf("Token = %+v, %v; want Uses %d", tok, err, limit)
	}
}

// TestSharedLease: of two processes acquiring one lease at once, one
// holds it.
func TestSharedLease(t *testing.T) {
	a, b := twoStores(t)
	for i := range 20 {
		name := fmt.Sprint("lease", i)
		var got [2]bool
		var wg sync.WaitGroup
		for j, s := range []*postgres.Store{a, b} {
			wg.Go(func() {
				var err error
				got[j], err = s.AcquireLease(t.Context(), name, fmt.Sprint("holder", j), t0, t0.Add(time.Minute))
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got[0] == got[1] {
			t.Fatalf("lease %s: holders got %v, want exactly one", name, got)
		}
	}
}
