package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/store/sqlite/sqlitetest"
)

// newStorage returns the audit storage of a new SQLite database file, and
// the file's path. The store is closed at the end of the test.
func newStorage(t testing.TB) (*sqlite.AuditStorage, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.Audit(sqlite.SyncNormal), path
}

// rawDB opens the database file at path the way an attacker with file
// access would: a separate connection, under the Store, with views of
// one row per record and per stored hash (sqlitetest.OpenRaw).
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sqlitetest.OpenRaw(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// execSQL runs q on db and fails the test on an error.
func execSQL(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// insertLeaf inserts leaf at record index i with raw SQL, search columns
// empty.
func insertLeaf(t testing.TB, db *sql.DB, i int64, leaf []byte) {
	t.Helper()
	execSQL(t, db, `INSERT INTO audit_records (idx, leaf) VALUES (?, ?)`, i, leaf)
}

// filled returns a Log on a new SQLite database holding Rec(0) ..
// Rec(n-1), and the database file's path, to tamper with it (rawDB).
func filled(t *testing.T, n int) (*audit.Log, string) {
	t.Helper()
	st, path := newStorage(t)
	l := audit.New(st, audit.Config{})
	t.Cleanup(func() { l.Close() })
	recs := make([]audit.Record, n)
	for i := range recs {
		recs[i] = audittest.Rec(i)
	}
	if _, err := l.Append(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	return l, path
}

// TestVerifyTamper changes the stored log under the Log, with raw SQL on
// the database file, in every way Verify must notice, and checks that it
// names the first bad record.
func TestVerifyTamper(t *testing.T) {
	const n = 100
	other := audittest.Rec(1000).Encode()
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB)
		want   int64
	}{
		{"change", func(t *testing.T, db *sql.DB) {
			execSQL(t, db, `UPDATE audit_records SET leaf = ? WHERE idx = 37`, other)
		}, 37},
		{"garble", func(t *testing.T, db *sql.DB) {
			execSQL(t, db, `UPDATE audit_records SET leaf = x'010203' WHERE idx = 37`)
		}, 37},
		{"delete", func(t *testing.T, db *sql.DB) {
			execSQL(t, db, `DELETE FROM audit_records WHERE idx = 37`)
		}, 37},
		{"delete last", func(t *testing.T, db *sql.DB) {
			execSQL(t, db, `DELETE FROM audit_records WHERE idx = ?`, n-1)
		}, n - 1},
		{"insert at end", func(t *testing.T, db *sql.DB) { insertLeaf(t, db, n, other) }, n},
		{"insert past end", func(t *testing.T, db *sql.DB) { insertLeaf(t, db, n+5, other) }, n},
		{"insert", func(t *testing.T, db *sql.DB) { // shift up through spare indexes
			execSQL(t, db, `UPDATE audit_records SET idx = idx + 1000 WHERE idx >= 37`)
			execSQL(t, db, `UPDATE audit_records SET idx = idx - 999 WHERE idx >= 1000`)
			insertLeaf(t, db, 37, other)
		}, 37},
		{"swap", func(t *testing.T, db *sql.DB) { // through a spare index
			execSQL(t, db, `UPDATE audit_records SET idx = 1000 WHERE idx = 20`)
			execSQL(t, db, `UPDATE audit_records SET idx = 20 WHERE idx = 30`)
			execSQL(t, db, `UPDATE audit_records SET idx = 30 WHERE idx = 1000`)
		}, 20},
		{"change hash", func(t *testing.T, db *sql.DB) {
			h := tlog.Hash{1}
			execSQL(t, db, `UPDATE audit_hashes SET hash = ? WHERE idx = ?`, h[:], tlog.StoredHashIndex(1, 25))
		}, 51},
		{"delete hash", func(t *testing.T, db *sql.DB) {
			execSQL(t, db, `DELETE FROM audit_hashes WHERE idx = ?`, tlog.StoredHashIndex(0, 60))
		}, 60},
		{"extra hash", func(t *testing.T, db *sql.DB) {
			execSQL(t, db, `INSERT INTO audit_hashes (idx, hash) VALUES (?, zeroblob(32))`, tlog.StoredHashCount(n))
		}, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, path := filled(t, n)
			tt.tamper(t, rawDB(t, path))
			_, _, err := l.Verify(t.Context(), nil)
			var ve *audit.VerifyError
			if !errors.As(err, &ve) || ve.Index != tt.want {
				t.Fatalf("Verify = %v, want a VerifyError at %d", err, tt.want)
			}
		})
	}
}

// TestVerifyChunks checks Verify across chunk boundaries and its progress
// reports.
func TestVerifyChunks(t *testing.T) {
	const chunk, n = 1000, 2500 // more than two chunks, the last one short
	audit.SetVerifyChunk(t, chunk)
	l, path := filled(t, n)
	db := rawDB(t, path)
	var calls []int64
	size, root, err := l.Verify(t.Context(), func(done, total int64) {
		if total != n {
			t.Errorf("progress total %d, want %d", total, n)
		}
		calls = append(calls, done)
	})
	if err != nil || size != n {
		t.Fatalf("Verify = %d, %v", size, err)
	}
	if want := []int64{chunk, 2 * chunk, n}; !slices.Equal(calls, want) {
		t.Errorf("progress calls %v", calls)
	}
	h := audittest.NewHasher()
	h.Add(audittest.Leaves(0, n))
	if root != h.Root(n) {
		t.Errorf("root %v, want %v", root, h.Root(n))
	}
	execSQL(t, db, `UPDATE audit_records SET leaf = ? WHERE idx = ?`, audittest.Rec(0).Encode(), n-3)
	var ve *audit.VerifyError
	if _, _, err := l.Verify(t.Context(), nil); !errors.As(err, &ve) || ve.Index != n-3 {
		t.Errorf("Verify after a change in the last chunk = %v", err)
	}
}

func TestVerifyEmpty(t *testing.T) {
	st, _ := newStorage(t)
	l := audit.New(st, audit.Config{})
	defer l.Close()
	want, err := tlog.TreeHash(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if size, root, err := l.Verify(t.Context(), nil); err != nil || size != 0 || root != want {
		t.Errorf("Verify of an empty log = %d, %v, %v", size, root, err)
	}
}

// failing wraps a real Storage and injects an error into its appends while
// broken is set.
type failing struct {
	audit.Storage
	mu     sync.Mutex
	broken bool
}

var errBroken = errors.New("disk on fire")

func (f *failing) Append(ctx context.Context, first int64, leaves [][]byte, hashes []tlog.Hash) error {
	f.mu.Lock()
	broken := f.broken
	f.mu.Unlock()
	if broken {
		return errBroken
	}
	return f.Storage.Append(ctx, first, leaves, hashes)
}

func (f *failing) set(b bool) {
	f.mu.Lock()
	f.broken = b
	f.mu.Unlock()
}

// TestFailClosed checks that every Append whose batch fails returns that
// error, that none of its records is stored, and that the log carries on
// once storage works again.
func TestFailClosed(t *testing.T) {
	ctx := t.Context()
	st, _ := newStorage(t)
	f := &failing{Storage: st}
	l := audit.New(f, audit.Config{})
	defer l.Close()
	audittest.AppendConcurrently(t, l, 8, 5)
	if err := l.Healthy(); err != nil {
		t.Fatalf("Healthy after good appends = %v", err)
	}
	f.set(true)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			if _, err := l.Append(ctx, audittest.Rec(1000+w)); !errors.Is(err, errBroken) {
				t.Errorf("Append on broken storage = %v, want errBroken", err)
			}
		})
	}
	wg.Wait()
	if err := l.Healthy(); !errors.Is(err, errBroken) {
		t.Fatalf("Healthy after failed appends = %v, want errBroken", err)
	}
	f.set(false)
	for i := 40; i < 50; i++ {
		if first, err := l.Append(ctx, audittest.Rec(i)); err != nil || first != int64(i) {
			t.Fatalf("Append after repair = %d, %v, want %d", first, err, i)
		}
	}
	audittest.CheckAll(t, l, 50)
	if err := l.Healthy(); err != nil || l.Queued() != 0 {
		t.Fatalf("Healthy after repair = %v, queued %d; want nil, 0", err, l.Queued())
	}
	l.Close()
	if err := l.Healthy(); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Healthy after Close = %v, want ErrClosed", err)
	}
}

// TestCloseConcurrent closes a Log under concurrent Appends: each returns
// either its index or ErrClosed, never hangs, and what was acknowledged is
// stored.
func TestCloseConcurrent(t *testing.T) {
	st, _ := newStorage(t)
	l := audit.New(st, audit.Config{})
	var wg sync.WaitGroup
	acked := make(chan int64, 64*100)
	for w := range 64 {
		wg.Go(func() {
			for i := range 100 {
				first, err := l.Append(context.Background(), audittest.Rec(w*100+i))
				if errors.Is(err, audit.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				acked <- first
			}
		})
	}
	l.Close()
	wg.Wait()
	close(acked)
	for i := range acked {
		if _, err := st.ReadLeaves(t.Context(), i, 1); err != nil {
			t.Fatalf("acknowledged record %d not stored: %v", i, err)
		}
	}
}

func TestAppendInvalid(t *testing.T) {
	st, _ := newStorage(t)
	l := audit.New(st, audit.Config{})
	defer l.Close()
	if _, err := l.Append(t.Context(), audit.Record{}); !errors.Is(err, audit.ErrMalformed) {
		t.Errorf("Append of an invalid record = %v, want ErrMalformed", err)
	}
	if _, err := l.Append(t.Context()); err == nil {
		t.Error("Append of nothing: no error")
	}
}

// TestMaxBatch appends more than a batch in one call and in many.
func TestMaxBatch(t *testing.T) {
	st, _ := newStorage(t)
	l := audit.New(st, audit.Config{MaxBatch: 3})
	defer l.Close()
	recs := make([]audit.Record, 10)
	for i := range recs {
		recs[i] = audittest.Rec(i)
	}
	if _, err := l.Append(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Go(func() {
			if _, err := l.Append(context.Background(), audittest.Rec(10+2*w), audittest.Rec(11+2*w)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	audittest.CheckAll(t, l, 30)
}

// TestLinger: a lone Append never waits for company, however long the
// linger (this would hang for an hour if it did), and concurrent Appends
// with a linger all commit, in order and complete.
func TestLinger(t *testing.T) {
	st, _ := newStorage(t)
	l := audit.New(st, audit.Config{Linger: time.Hour})
	for i := range 5 {
		if first, err := l.Append(t.Context(), audittest.Rec(i)); err != nil || first != int64(i) {
			t.Fatalf("lone Append %d = %d, %v", i, first, err)
		}
	}
	l.Close()

	st, _ = newStorage(t)
	l = audit.New(st, audit.Config{Linger: time.Millisecond, MaxBatch: 16})
	defer l.Close()
	audittest.AppendConcurrently(t, l, 32, 20)
	audittest.CheckAll(t, l, 32*20)
}

// observer records what a Log tells its Observer.
type observer struct {
	mu         sync.Mutex
	appends    int
	failed     int
	integrated int
	batches    int
}

func (o *observer) Appended(took time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.appends++
	if err != nil {
		o.failed++
	}
}

func (o *observer) Integrated(n int, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.integrated += n
	o.batches++
}

// TestObserve checks what a Log tells its Observer, on a Storage and on a
// Queue: every Append once, failed or not, and on a Queue every record
// the sequencer adds to the tree.
func TestObserve(t *testing.T) {
	for _, queued := range []bool{false, true} {
		t.Run(map[bool]string{false: "storage", true: "queue"}[queued], func(t *testing.T) {
			ctx := t.Context()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "latchkey.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var storage audit.Storage = st.Audit(sqlite.SyncNormal)
			if queued {
				q, err := st.QueuedAudit(ctx, sqlite.SyncNormal)
				if err != nil {
					t.Fatal(err)
				}
				defer q.Close()
				storage = q
			}
			var o observer
			l := audit.New(storage, audit.Config{Observe: &o})
			for i := range 5 {
				if _, err := l.Append(ctx, audittest.Rec(2*i), audittest.Rec(2*i+1)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			l.Close()
			if _, err := l.Append(ctx, audittest.Rec(10)); !errors.Is(err, audit.ErrClosed) {
				t.Fatalf("Append after Close: %v", err)
			}
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.appends != 6 || o.failed != 1 {
				t.Errorf("observed %d appends, %d failed; want 6, 1", o.appends, o.failed)
			}
			want := 0
			if queued {
				want = 10
			}
			if o.integrated != want || (want > 0) != (o.batches > 0) {
				t.Errorf("observed %d records integrated in %d batches, want %d", o.integrated, o.batches, want)
			}
		})
	}
}
