package access_test

import (
	"context"
	"crypto/sha256"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/store/storetest"
)

// BenchmarkAuthenticate measures token parse + checksum + cache lookup +
// constant-time hash compare + expiry checks, with the record cached: the
// per-request cost of authentication on the gateway's hot path.
// Target: <= 2 us/op (>= 500k/s on one core).
func BenchmarkAuthenticate(b *testing.B) {
	e := newEnv(b)
	e.seed(b)
	ctx := context.Background()
	iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateParallel is the same from every core at once.
func BenchmarkAuthenticateParallel(b *testing.B) {
	e := newEnv(b)
	e.seed(b)
	ctx := context.Background()
	iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkIssue measures issuing contractor tokens on SQLite with every
// rule checked (contractor, grants, scopes, services), one at a time.
// Target: >= 2,000 tokens/s.
func BenchmarkIssue(b *testing.B) {
	e := newEnv(b)
	e.seed(b)
	ctx := context.Background()
	req := access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/invoices/*"}, TTL: time.Hour}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.a.Issue(ctx, root, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// The report benchmarks share one store seeded once with
// storetest.Sizing (10,000 contractors, 100,000 tokens), through the
// store's public API. Target: <= 200 ms per report.
var (
	seedOnce sync.Once
	seedEnv  *env
	seedErr  error
	seedNow  = time.Date(2031, time.March, 4, 12, 0, 0, 0, time.UTC)
)

func seeded(b *testing.B) *env {
	seedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "latchkey-access-bench-")
		if err != nil {
			seedErr = err
			return
		}
		seedEnv, seedErr = openEnv(dir)
		if seedErr == nil {
			seedEnv.clock.t = seedNow
			seedErr = storetest.Seed(context.Background(), seedEnv.st, seedNow, storetest.Sizing)
		}
	})
	if seedErr != nil {
		b.Fatal(seedErr)
	}
	return seedEnv
}

func BenchmarkActiveReport(b *testing.B) {
	e := seeded(b)
	for b.Loop() {
		if _, err := e.a.ActiveReport(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAccessReport(b *testing.B) {
	e := seeded(b)
	for b.Loop() {
		if _, err := e.a.AccessReport(b.Context(), ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnusedReport(b *testing.B) {
	e := seeded(b)
	var toks, scopes int
	for b.Loop() {
		t, s, err := e.a.Unused(b.Context(), 30*24*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		toks, scopes = len(t), len(s)
	}
	b.ReportMetric(float64(toks), "tokens")
	b.ReportMetric(float64(scopes), "scopes")
}

// BenchmarkBaselineSHA256 is the floor under BenchmarkAuthenticate: one
// SHA-256 of a 32-byte secret, which every verification must pay.
func BenchmarkBaselineSHA256(b *testing.B) {
	secret := make([]byte, 32)
	var sum [32]byte
	for b.Loop() {
		sum = sha256.Sum256(secret)
	}
	_ = sum
}

// BenchmarkIssueParallel issues from 16 concurrent admins, as a busy
// server does: audit records of concurrent issues share a commit.
func BenchmarkIssueParallel(b *testing.B) {
	e := newEnv(b)
	e.seed(b)
	ctx := context.Background()
	req := access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/invoices/*"}, TTL: time.Hour}
	b.SetParallelism(8) // 16 goroutines on 2 cores
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.a.Issue(ctx, root, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
