package access_test

import (
	"context"
	"testing"
	"time"

	"latchkey/internal/access"
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
	if _, _, err := e.a.Authenticate(ctx, iss.Text); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.a.Authenticate(ctx, iss.Text); err != nil {
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
			if _, _, err := e.a.Authenticate(ctx, iss.Text); err != nil {
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
