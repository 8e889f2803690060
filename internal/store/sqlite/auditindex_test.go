package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// indexed counts the rows of the search index of the store at path.
func indexed(t *testing.T, path string) int {
	t.Helper()
	var n int
	db := rawDB(t, strings.TrimSuffix(path, ".db")+"-search.db")
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM audit_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIndexAuditProcess: with ExternalIndexer the store leaves its index
// alone; IndexAudit, as the indexer process runs it, fills it while
// records are appended, and at the same time as the store's own catch-ups
// (a search's) and a second IndexAudit, with every record indexed once;
// --follow's loop ends with its context.
func TestIndexAuditProcess(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "latchkey.db")
	s, err := sqlite.Open(t.Context(), path, sqlite.ExternalIndexer(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := s.Audit(sqlite.SyncNormal)
	l := audit.New(st, audit.Config{})
	defer l.Close()
	audittest.AppendConcurrently(t, l, 4, 25)
	if _, err := l.Size(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // longer than the in-process indexer's period
	if n := indexed(t, path); n != 0 {
		t.Fatalf("an ExternalIndexer store indexed %d records itself", n)
	}

	ctx, cancel := context.WithCancel(t.Context())
	followed := make(chan error, 2)
	for range 2 {
		go func() { followed <- sqlite.IndexAudit(ctx, path, 5*time.Millisecond, nil) }()
	}
	stop := make(chan struct{})
	searched := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				searched <- nil
				return
			default:
			}
			if _, err := st.Search(t.Context(), audit.Filter{Limit: 1}); err != nil {
				searched <- err
				return
			}
		}
	}()
	audittest.AppendConcurrently(t, l, 4, 250)
	size, err := l.Size(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	if err := <-searched; err != nil {
		t.Fatalf("Search beside the indexers: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for indexed(t, path) < int(size) {
		if time.Now().After(deadline) {
			t.Fatalf("index holds %d of %d records after 10s", indexed(t, path), size)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	for range 2 {
		if err := <-followed; err != nil {
			t.Fatalf("IndexAudit --follow: %v", err)
		}
	}
	if err := st.CheckSearchColumns(t.Context(), size); err != nil {
		t.Fatalf("index after concurrent indexers: %v", err)
	}
	if n := indexed(t, path); n != int(size) {
		t.Fatalf("index holds %d rows for %d records", n, size)
	}

	// Once more, one-shot, from an empty index: progress counts up to
	// the log's size.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, "latchkey-search.db") + suffix)
	}
	var last, total int64
	if err := sqlite.IndexAudit(t.Context(), path, 0, func(done, size int64) { last, total = done, size }); err != nil {
		t.Fatal(err)
	}
	if last != size || total != size {
		t.Fatalf("one-shot progress ended at %d of %d, want %d of %d", last, total, size, size)
	}

	// Stopping --follow is not an error, wherever it stops; a one-shot
	// run cut short is.
	stopped, stop2 := context.WithCancel(t.Context())
	stop2()
	if err := sqlite.IndexAudit(stopped, path, time.Second, nil); err != nil {
		t.Errorf("IndexAudit --follow stopped before its first round: %v", err)
	}
	if err := sqlite.IndexAudit(stopped, path, 0, nil); err == nil {
		t.Error("a one-shot IndexAudit with its context done succeeded")
	}
}

// TestIndexAuditRefuses: IndexAudit neither creates a store nor indexes
// one whose schema is not its binary's (it does not migrate).
func TestIndexAuditRefuses(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.db")
	if err := sqlite.IndexAudit(t.Context(), missing, 0, nil); err == nil {
		t.Fatal("IndexAudit of a missing file succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("IndexAudit created %s: %v", missing, err)
	}
	path := filepath.Join(dir, "latchkey.db")
	openStore(t, path)
	db := rawDB(t, path)
	if _, err := db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version) SELECT max(version) + 1 FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	err := sqlite.IndexAudit(t.Context(), path, 0, nil)
	if err == nil || !strings.Contains(err.Error(), "schema version") {
		t.Fatalf("IndexAudit of a newer store = %v, want a schema version error", err)
	}
}

// TestExternalIndexerLag: an ExternalIndexer store whose index falls more
// than maxLag records behind (its indexer process starved, or dead)
// catches it up itself.
func TestExternalIndexerLag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s, err := sqlite.Open(t.Context(), path, sqlite.ExternalIndexer(10))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := audit.New(s.Audit(sqlite.SyncNormal), audit.Config{})
	defer l.Close()
	audittest.AppendConcurrently(t, l, 1, 8)
	time.Sleep(1500 * time.Millisecond)
	if n := indexed(t, path); n != 0 {
		t.Fatalf("the store indexed %d records, 8 behind with maxLag 10", n)
	}
	audittest.AppendConcurrently(t, l, 4, 10)
	deadline := time.Now().Add(10 * time.Second)
	for indexed(t, path) < 48 {
		if time.Now().After(deadline) {
			t.Fatalf("index holds %d of 48 records 10s after falling 48 behind with maxLag 10", indexed(t, path))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
