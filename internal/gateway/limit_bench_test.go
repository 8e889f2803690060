package gateway

import (
	"crypto/rand"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"latchkey/internal/token"
)

// keys returns n token ids, made before any measurement: the ids a
// gateway's limiter holds belong to its token cache.
func keys(b *testing.B, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		_, p, err := token.Generate(token.Contractor, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = p.ID
	}
	return ids
}

// BenchmarkLimiterAllow is the per-request cost of the per-token limit,
// the requests spread over 100,000 tokens.
func BenchmarkLimiterAllow(b *testing.B) {
	ids := keys(b, 100_000)
	l := newLimiters[string](DefaultTokenRate, DefaultTokenBurst, maxTokenLimiters)
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.allow(ids[i], now)
		if i++; i == len(ids) {
			i = 0
		}
	}
}

// BenchmarkLimiterAllowParallel is the same from every core at once.
func BenchmarkLimiterAllowParallel(b *testing.B) {
	ids := keys(b, 100_000)
	l := newLimiters[string](DefaultTokenRate, DefaultTokenBurst, maxTokenLimiters)
	now := time.Now()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919)) % len(ids)
		for pb.Next() {
			l.allow(ids[i], now)
			if i++; i == len(ids) {
				i = 0
			}
		}
	})
}

// BenchmarkLimiterMemory measures the live heap each key's bucket holds,
// B/key, with 100,000 keys.
func BenchmarkLimiterMemory(b *testing.B) {
	ids := keys(b, 100_000)
	now := time.Now()
	var perKey float64
	for b.Loop() {
		before := heap()
		l := newLimiters[string](DefaultTokenRate, DefaultTokenBurst, maxTokenLimiters)
		for _, id := range ids {
			l.allow(id, now)
		}
		perKey = float64(heap()-before) / float64(len(ids))
		runtime.KeepAlive(l)
	}
	b.ReportMetric(perKey, "B/key")
}

// heap returns the live heap after a collection.
func heap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
