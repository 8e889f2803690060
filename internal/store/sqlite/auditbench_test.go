package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/store/sqlite"
)

// BenchmarkAuditAppend measures an audited gateway request's share of the
// audit log on SQLite: Appends of one record each from 64 goroutines, and
// the sequencer's integration of them into the tree, which Sync waits for
// at the end of the timed window.
func BenchmarkAuditAppend(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "a.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	q, err := s.QueuedAudit(ctx, sqlite.SyncNormal)
	if err != nil {
		b.Fatal(err)
	}
	l := audit.New(q, audit.Config{})
	defer l.Close()
	rec := audit.Record{Time: time.Now(), Actor: "tok_0123456789abcdef", ActorName: "alice",
		Action: "gateway.request", Contractor: "alice", TokenID: "tok_0123456789abcdef", Service: "echo",
		Method: "GET", Path: "/echo/hello/world", Status: 200, Decision: "allow", Source: "127.0.0.1:50000"}
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(ctx, rec); err != nil {
				panic(fmt.Sprint(err))
			}
		}
	})
	if err := l.Sync(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAuditBatch measures what adding one record to the tree costs
// in a batch of 80, about the sequencer's batch at 4000 records/s and its
// 20 ms delay: the stored hashes, the rows and their commit, on one
// goroutine. ns/op is per record.
func BenchmarkAuditBatch(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "a.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := audit.New(s.Audit(sqlite.SyncNormal), audit.Config{})
	defer l.Close()
	const batch = 80
	recs := make([]audit.Record, batch)
	for i := range recs {
		recs[i] = audit.Record{Time: time.Now(), Actor: "tok_0123456789abcdef", ActorName: "alice",
			Action: "gateway.request", Contractor: "alice", TokenID: "tok_0123456789abcdef", Service: "echo",
			Method: "GET", Path: fmt.Sprintf("/echo/hello/world/%d", i), Status: 200, Decision: "allow", Source: "127.0.0.1:50000"}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += batch {
		if _, err := l.Append(ctx, recs[:min(batch, b.N-n)]...); err != nil {
			b.Fatal(err)
		}
	}
}
