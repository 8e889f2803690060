package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/store/sqlite/sqlitetest"
)

func TestAuditStorage(t *testing.T) {
	for _, sync := range []sqlite.Sync{sqlite.SyncNormal, sqlite.SyncFull} {
		t.Run(fmt.Sprint("sync=", sync), func(t *testing.T) {
			audittest.Run(t, func(t *testing.T) audit.Storage {
				return openStore(t, filepath.Join(t.TempDir(), "latchkey.db")).Audit(sync)
			})
		})
	}
}

func openStore(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawDB opens the database file the way an attacker with file access
// would: a separate connection, under the Store, with views of one row
// per record and per stored hash (sqlitetest.OpenRaw).
func rawDB(t *testing.T, path string) *sql.DB {
	db, err := sqlitetest.OpenRaw(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestAuditTamper edits the audit tables with raw SQL on the database file
// and checks that Verify names the first bad record, or, for a truncation
// or a rewrite with recomputed hashes, that the log no longer extends a
// checkpoint signed before.
func TestAuditTamper(t *testing.T) {
	const n = 100
	other := audittest.Rec(1000).Encode()
	hashRow := func(level int, i int64) int64 { return tlog.StoredHashIndex(level, i) }
	tests := []struct {
		name  string
		sql   []string
		args  [][]any
		want  int64 // first bad index Verify reports
		trunc int64 // or, if not 0, the size Verify accepts, below the checkpoint
	}{
		{name: "change", sql: []string{`UPDATE audit_records SET leaf = ? WHERE idx = 37`},
			args: [][]any{{other}}, want: 37},
		{name: "garble", sql: []string{`UPDATE audit_records SET leaf = x'01' WHERE idx = 37`}, want: 37},
		{name: "delete", sql: []string{`DELETE FROM audit_records WHERE idx = 37`}, want: 37},
		{name: "delete last", sql: []string{`DELETE FROM audit_records WHERE idx = 99`}, want: 99},
		{name: "insert at end", sql: []string{
			`INSERT INTO audit_records (idx, leaf) VALUES (100, ?)`},
			args: [][]any{{other}}, want: 100},
		{name: "insert", sql: []string{
			`UPDATE audit_records SET idx = idx + 1000 WHERE idx >= 37`,
			`UPDATE audit_records SET idx = idx - 999 WHERE idx >= 1000`,
			`INSERT INTO audit_records (idx, leaf) VALUES (37, ?)`},
			args: [][]any{nil, nil, {other}}, want: 37},
		{name: "swap", sql: []string{ // through a spare index
			`UPDATE audit_records SET idx = 1000 WHERE idx = 20`,
			`UPDATE audit_records SET idx = 20 WHERE idx = 30`,
			`UPDATE audit_records SET idx = 30 WHERE idx = 1000`},
			want: 20},
		{name: "change hash", sql: []string{`UPDATE audit_hashes SET hash = zeroblob(32) WHERE idx = ?`},
			args: [][]any{{hashRow(1, 25)}}, want: 51},
		{name: "delete hash", sql: []string{`DELETE FROM audit_hashes WHERE idx = ?`},
			args: [][]any{{hashRow(0, 60)}}, want: 60},
		{name: "truncate", sql: []string{
			`DELETE FROM audit_records WHERE idx >= 80`,
			`DELETE FROM audit_hashes WHERE idx >= ?`},
			args: [][]any{nil, {tlog.StoredHashCount(80)}}, trunc: 80},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "latchkey.db")
			s := openStore(t, path)
			l, old := fill(t, s, n)
			db := rawDB(t, path)
			for i, q := range tt.sql {
				var args []any
				if i < len(tt.args) {
					args = tt.args[i]
				}
				if _, err := db.ExecContext(ctx, q, args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			size, root, err := l.Verify(ctx, nil)
			if tt.trunc == 0 {
				var ve *audit.VerifyError
				if !errors.As(err, &ve) || ve.Index != tt.want {
					t.Fatalf("Verify = %v, want a VerifyError at %d", err, tt.want)
				}
				return
			}
			if err != nil || size != tt.trunc {
				t.Fatalf("Verify = %d, %v, want %d records", size, err, tt.trunc)
			}
			var ve *audit.VerifyError
			if err := extends(ctx, l, old, size, root); !errors.As(err, &ve) || ve.Index != tt.trunc {
				t.Fatalf("CheckExtends = %v, want a VerifyError at %d", err, tt.trunc)
			}
		})
	}
}

// fill appends Rec(0) .. Rec(n-1) to a Log on s and returns the Log and a
// checkpoint of it, signed and opened again.
func fill(t *testing.T, s *sqlite.Store, n int) (*audit.Log, audit.Checkpoint) {
	t.Helper()
	ctx := t.Context()
	l := audit.New(s.Audit(sqlite.SyncNormal), audit.Config{})
	t.Cleanup(func() { l.Close() })
	audittest.AppendConcurrently(t, l, 4, n/4)
	dir := t.TempDir()
	if err := audit.GenerateKey(dir, "latchkey.test/audit"); err != nil {
		t.Fatal(err)
	}
	signer, err := audit.LoadSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Checkpoint(ctx, signer)
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.LoadVerifier(filepath.Join(dir, audit.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	return l, open(t, b, v)
}

func open(t *testing.T, b []byte, v note.Verifier) audit.Checkpoint {
	t.Helper()
	c, err := audit.OpenCheckpoint(b, v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func extends(ctx context.Context, l *audit.Log, old audit.Checkpoint, size int64, root tlog.Hash) error {
	return audit.CheckExtends(old, size, root, func(o, n int64) (tlog.TreeProof, error) {
		return l.ProveTree(ctx, o, n)
	})
}

// TestAuditRewrite rewrites one record and every stored hash with raw SQL,
// as a careful attacker would: Verify passes, and the older checkpoint
// catches it.
func TestAuditRewrite(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s := openStore(t, path)
	l, old := fill(t, s, 100)
	if _, err := l.Append(ctx, audittest.Rec(100)); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	if _, err := db.ExecContext(ctx, `UPDATE audit_records SET leaf = ? WHERE idx = 10`, audittest.Rec(999).Encode()); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT leaf FROM audit_records ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	h := audittest.NewHasher()
	for rows.Next() {
		var leaf []byte
		if err := rows.Scan(&leaf); err != nil {
			t.Fatal(err)
		}
		h.Add([][]byte{leaf})
	}
	rows.Close()
	for x, v := range h.Hashes {
		if _, err := db.ExecContext(ctx, `UPDATE audit_hashes SET hash = ? WHERE idx = ?`, v[:], x); err != nil {
			t.Fatal(err)
		}
	}
	size, root, err := l.Verify(ctx, nil)
	if err != nil {
		t.Fatalf("Verify of a consistently rewritten log: %v", err)
	}
	if err := extends(ctx, l, old, size, root); !errors.Is(err, audit.ErrNotExtend) {
		t.Errorf("CheckExtends = %v, want ErrNotExtend", err)
	}
}

// TestAuditConcurrent64 is the acceptance test: 64 concurrent appenders on
// SQLite, every record exactly once at dense indexes, and the log verifies
// and proves.
func TestAuditConcurrent64(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "latchkey.db"))
	l := audit.New(s.Audit(sqlite.SyncNormal), audit.Config{})
	defer l.Close()
	audittest.AppendConcurrently(t, l, 64, 50)
	audittest.CheckAll(t, l, 64*50)
	ctx := t.Context()
	root, err := l.TreeHash(ctx, 64*50)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 1234, 64*50 - 1} {
		p, err := l.ProveRecord(ctx, i, 64*50)
		if err != nil {
			t.Fatal(err)
		}
		_, leaf, err := l.Record(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, 64*50, root, i, tlog.RecordHash(leaf)); err != nil {
			t.Errorf("CheckRecord(%d): %v", i, err)
		}
	}
}

// BenchmarkAppend64 measures committed appends per second from 64
// concurrent writers, one record per Append, on a database file.
func BenchmarkAppend64(b *testing.B) {
	for _, sync := range []sqlite.Sync{sqlite.SyncNormal, sqlite.SyncFull} {
		b.Run(fmt.Sprint("sync=", sync), func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "latchkey.db"))
			l := audit.New(s.Audit(sync), audit.Config{})
			defer l.Close()
			var next atomic.Int64
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((64 + procs - 1) / procs) // 64 goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(context.Background(), audittest.Rec(int(next.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkVerify measures Verify of a log of 100,000 records (and of
// 1,000,000 unless -short) and reports the cost per record.
func BenchmarkVerify(b *testing.B) {
	sizes := []int{100_000, 1_000_000}
	if testing.Short() {
		sizes = sizes[:1]
	}
	for _, n := range sizes {
		b.Run(fmt.Sprint("records=", n), func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "latchkey.db"))
			l := audit.New(s.Audit(sqlite.SyncNormal), audit.Config{})
			defer l.Close()
			recs := make([]audit.Record, 4096)
			for i := 0; i < n; i += len(recs) {
				k := min(len(recs), n-i)
				for j := range k {
					recs[j] = audittest.Rec(i + j)
				}
				if _, err := l.Append(context.Background(), recs[:k]...); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				if size, _, err := l.Verify(context.Background(), nil); err != nil || size != int64(n) {
					b.Fatal(size, err)
				}
			}
			perOp := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(perOp*1e9/float64(n), "ns/record")
			b.ReportMetric(perOp, "s/verify")
		})
	}
}

// TestAppendAfterOtherWriter: a storage that skips the size check after
// its own appends still refuses, with ErrConflict, an append at a size
// another writer has already moved past, and changes nothing.
func TestAppendAfterOtherWriter(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, filepath.Join(t.TempDir(), "latchkey.db"))
	mine, theirs := s.Audit(sqlite.SyncNormal), s.Audit(sqlite.SyncNormal)
	h := audittest.NewHasher()
	leaves := audittest.Leaves(0, 3)
	if err := mine.Append(ctx, 0, leaves, h.Add(leaves)); err != nil {
		t.Fatal(err)
	}
	other := audittest.NewHasher()
	other.Add(leaves)
	more := audittest.Leaves(3, 2)
	if err := theirs.Append(ctx, 3, more, other.Add(more)); err != nil {
		t.Fatal(err)
	}
	late := audittest.Leaves(100, 2)
	if err := mine.Append(ctx, 3, late, h.Add(late)); !errors.Is(err, audit.ErrConflict) {
		t.Fatalf("append at a size another writer moved past: %v, want ErrConflict", err)
	}
	if n, err := mine.Size(ctx); err != nil || n != 5 {
		t.Fatalf("size %d (err %v), want 5", n, err)
	}
}
