package access

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/token"
)

// BenchmarkCacheMemory measures the live heap each cached token holds:
// 10,000 contractor tokens, as "latchkey bench gateway" creates them (one
// contractor, one scope, a note), loaded from SQLite into a new cache.
// The figure is B/token: what the cache keeps, store reads' garbage
// excluded.
func BenchmarkCacheMemory(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "latchkey.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	if err := st.CreateContractor(ctx, store.Contractor{Name: "loadgen", Email: "l@example.com", Sponsor: "s",
		Until: now.Add(24 * time.Hour), CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		_, p, err := token.Generate(token.Contractor, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = p.ID
		if err := st.CreateToken(ctx, store.Token{ID: p.ID, Contractor: "loadgen", Scopes: []string{"echo:GET:/v1/**"},
			Hash: p.Hash(), ExpiresAt: now.Add(time.Hour), CreatedAt: now, CreatedBy: "loadgen", Note: "latchkey bench"}); err != nil {
			b.Fatal(err)
		}
	}
	var perToken float64
	for b.Loop() {
		before := heap()
		c := newCache()
		for _, id := range ids {
			if _, err := c.load(ctx, st, id, now); err != nil {
				b.Fatal(err)
			}
		}
		perToken = float64(heap()-before) / n
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perToken, "B/token")
}

// heap returns the live heap after a collection.
func heap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
