package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/sqlite"
)

// TestSearchIndexTamper: the search index is checked against the leaves:
// a row edited or removed there (to hide a record from search) is
// reported by CheckSearchColumns, and a deleted index file is rebuilt.
func TestSearchIndexTamper(t *testing.T) {
	for _, tt := range []struct {
		name, sql, reason string
	}{
		{"edited", `UPDATE audit_keys SET contractor = 42 WHERE idx = 17`, "search columns differ"},
		{"removed", `DELETE FROM audit_keys WHERE idx = 17`, "missing from the search index"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "latchkey.db")
			s := openStore(t, path)
			st := s.Audit(sqlite.SyncNormal)
			l := audit.New(st, audit.Config{})
			defer l.Close()
			audittest.AppendConcurrently(t, l, 4, 10)
			if err := st.CheckSearchColumns(t.Context(), 40); err != nil {
				t.Fatalf("untouched: %v", err)
			}
			db := rawDB(t, filepath.Join(dir, "latchkey-search.db"))
			if _, err := db.ExecContext(t.Context(), tt.sql); err != nil {
				t.Fatal(err)
			}
			var ve *audit.VerifyError
			err := st.CheckSearchColumns(t.Context(), 40)
			if !errors.As(err, &ve) || ve.Index != 17 {
				t.Fatalf("CheckSearchColumns = %v, want a VerifyError at 17", err)
			}
			if !strings.Contains(ve.Reason, tt.reason) {
				t.Errorf("reason %q, want %q", ve.Reason, tt.reason)
			}
		})
	}

	t.Run("file deleted", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "latchkey.db")
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		l := audit.New(s.Audit(sqlite.SyncNormal), audit.Config{})
		audittest.AppendConcurrently(t, l, 4, 10)
		l.Close()
		s.Close()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(filepath.Join(dir, "latchkey-search.db") + suffix)
		}
		s = openStore(t, path)
		st := s.Audit(sqlite.SyncNormal)
		if err := st.CheckSearchColumns(t.Context(), 40); err != nil {
			t.Fatalf("rebuilt index: %v", err)
		}
		got, err := st.Search(t.Context(), audit.Filter{Limit: 100})
		if err != nil || len(got) != 40 {
			t.Fatalf("Search after rebuild: %d records, %v; want 40", len(got), err)
		}
	})
}

// BenchmarkIndexAudit: the search index's cost per record, for gateway
// request records indexed 4096 at a time (as the indexer catches up).
func BenchmarkIndexAudit(b *testing.B) {
	ctx := context.Background()
	st := openStore(b, filepath.Join(b.TempDir(), "latchkey.db"))
	as := st.Audit(sqlite.SyncNormal)
	h := audittest.NewHasher()
	var n int64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		leaves := make([][]byte, 4096)
		for i := range leaves {
			r := audittest.Rec(int(n) + i)
			r.Action, r.Service, r.Method, r.Path = "gateway.request", "billing", "GET", "/v1/invoices/42"
			leaves[i] = r.Encode()
		}
		if err := as.Append(ctx, n, leaves, h.Add(leaves)); err != nil {
			b.Fatal(err)
		}
		n += int64(len(leaves))
		b.StartTimer()
		if err := st.IndexAudit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
}

// TestSearchRechecksRecords: the index holds hashes and only narrows the
// search; a candidate whose record does not match (a hash collision, here
// forged by giving every row the same contractor key) is not returned,
// and the search pages past such candidates to fill its answer.
func TestSearchRechecksRecords(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "latchkey.db"))
	st := s.Audit(sqlite.SyncNormal)
	l := audit.New(st, audit.Config{})
	defer l.Close()
	for i := range 300 {
		if _, err := l.Append(t.Context(), audittest.Rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.IndexAudit(t.Context()); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, filepath.Join(dir, "latchkey-search.db"))
	if _, err := db.ExecContext(t.Context(), `UPDATE audit_keys SET contractor = (SELECT contractor FROM audit_keys WHERE idx = 5)`); err != nil {
		t.Fatal(err)
	}
	want := audittest.Rec(5).Contractor
	for _, limit := range []int{1, 100} {
		got, err := st.Search(t.Context(), audit.Filter{Contractor: want, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for _, e := range got {
			if e.Record.Contractor != want {
				t.Fatalf("limit %d: record %d of contractor %q returned for %q", limit, e.Index, e.Record.Contractor, want)
			}
			n++
		}
		if n == 0 {
			t.Fatalf("limit %d: record 5 not found behind the colliding candidates", limit)
		}
	}
}
