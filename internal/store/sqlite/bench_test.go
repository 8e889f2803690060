package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/store/storetest"
)

// The report benchmarks share one database, seeded once per test binary
// through the public API and removed by TestMain. Its shape is the
// project's sizing target: 10,000 contractors holding 100,000 tokens.

// benchNow is the instant the seeded data and the reports are relative to.
var benchNow = time.Date(2031, time.March, 4, 12, 0, 0, 0, time.UTC)

var (
	seedOnce  sync.Once
	seedDir   string
	seedStore *sqlite.Store
	seedErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if seedStore != nil {
		seedStore.Close()
	}
	if seedDir != "" {
		os.RemoveAll(seedDir)
	}
	os.Exit(code)
}

// seeded returns the shared benchmark database, seeding it on first use.
func seeded(b *testing.B) *sqlite.Store {
	seedOnce.Do(func() {
		seedDir, seedErr = os.MkdirTemp("", "latchkey-bench-")
		if seedErr != nil {
			return
		}
		start := time.Now()
		seedStore, seedErr = seed(context.Background(), filepath.Join(seedDir, "bench.db"))
		if seedErr == nil {
			fmt.Fprintf(os.Stderr, "seeded benchmark database in %v\n", time.Since(start).Round(time.Millisecond))
		}
	})
	if seedErr != nil {
		b.Fatalf("seed: %v", seedErr)
	}
	return seedStore
}

// seed creates the benchmark database at path with storetest.Sizing.
func seed(ctx context.Context, path string) (*sqlite.Store, error) {
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	if err := storetest.Seed(ctx, s, benchNow, storetest.Sizing); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// benchToken is token j of contractor i.
func benchToken(i, j int, contractor string) store.Token {
	return storetest.SeedToken(storetest.Sizing, benchNow, i, j, contractor)
}

// BenchmarkCreateToken measures inserting tokens one at a time, each in
// its own transaction. Target: at least 2,000 tokens/s.
func BenchmarkCreateToken(b *testing.B) {
	ctx := b.Context()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range 100 {
		if err := s.CreateContractor(ctx, store.Contractor{Name: fmt.Sprintf("c%05d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	n := 0
	for b.Loop() {
		tok := benchToken(n, n%6, fmt.Sprintf("c%05d", n%100))
		tok.ID = fmt.Sprintf("b%011d", n)
		if err := s.CreateToken(ctx, tok); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkRecordUse measures a gateway flush: one batch of 1,000 uses.
func BenchmarkRecordUse(b *testing.B) {
	ctx := b.Context()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateContractor(ctx, store.Contractor{Name: "c"}); err != nil {
		b.Fatal(err)
	}
	uses := make([]store.Use, 1000)
	for i := range uses {
		tok := benchToken(i, 0, "c")
		if err := s.CreateToken(ctx, tok); err != nil {
			b.Fatal(err)
		}
		uses[i] = store.Use{TokenID: tok.ID, Count: 3, Scopes: tok.Scopes}
	}
	n := 0
	for b.Loop() {
		for i := range uses {
			uses[i].At = benchNow.Add(time.Duration(n) * time.Millisecond)
		}
		if err := s.RecordUse(ctx, uses); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n*len(uses))/b.Elapsed().Seconds(), "uses/s")
}

func BenchmarkActiveReport(b *testing.B) {
	s := seeded(b)
	var rows []store.ActiveRow
	for b.Loop() {
		var err error
		if rows, err = s.ActiveReport(b.Context(), benchNow); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rows)), "rows")
}

func BenchmarkAccessReport(b *testing.B) {
	s := seeded(b)
	for _, who := range []string{"", "c04242"} {
		name := "all"
		if who != "" {
			name = "one"
		}
		b.Run(name, func(b *testing.B) {
			var rows []store.AccessRow
			for b.Loop() {
				var err error
				if rows, err = s.AccessReport(b.Context(), who, benchNow); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(rows)), "rows")
		})
	}
}

func BenchmarkUnusedTokens(b *testing.B) {
	s := seeded(b)
	var rows []store.UnusedToken
	for b.Loop() {
		var err error
		if rows, err = s.UnusedTokens(b.Context(), benchNow.Add(-30*24*time.Hour), benchNow); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rows)), "rows")
}

func BenchmarkScopeUses(b *testing.B) {
	s := seeded(b)
	var rows []store.ScopeUse
	for b.Loop() {
		var err error
		if rows, err = s.ScopeUses(b.Context(), benchNow.Add(-30*24*time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rows)), "rows")
}
