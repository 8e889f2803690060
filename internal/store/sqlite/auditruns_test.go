package sqlite_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/store/sqlite/sqlitetest"
)

// fillRuns appends batches of records of several sizes, one Append each,
// so that the log is stored in runs of 1 to leafRun records, some of a
// batch larger than leafRun.
func fillRuns(t *testing.T, s *sqlite.Store) *audit.Log {
	t.Helper()
	l := audit.New(s.Audit(sqlite.SyncNormal), audit.Config{})
	t.Cleanup(func() { l.Close() })
	next := 0
	for _, k := range []int{3, 1, 300, 2, 7, 130, 5} {
		recs := make([]audit.Record, k)
		for i := range recs {
			recs[i] = audittest.Rec(next + i)
		}
		if _, err := l.Append(t.Context(), recs...); err != nil {
			t.Fatal(err)
		}
		next += k
	}
	return l
}

// TestAuditRunTamper edits the runs themselves, as the appends wrote them
// (many records to a run), and checks that Verify names the first record
// it can no longer read or check.
func TestAuditRunTamper(t *testing.T) {
	// A run of at least two records that is not the first: ?1 below.
	const pick = `(SELECT first FROM audit_leaf_runs WHERE n >= 2 AND first > 0 ORDER BY first LIMIT 1)`
	// A run that follows a run of at least two records, so that it can
	// move down one into it.
	const pickAfterLong = `(SELECT r.first FROM audit_leaf_runs r WHERE r.first > 0
		AND NOT EXISTS (SELECT 1 FROM audit_leaf_runs p WHERE p.first = r.first - 1) ORDER BY r.first LIMIT 1)`
	tests := []struct {
		name string
		sql  string
		want string // query for the index Verify must report
	}{
		{"leaves cut short", `UPDATE audit_leaf_runs SET leaves = substr(leaves, 2) WHERE first = ` + pick, pick},
		{"leaves too long", `UPDATE audit_leaf_runs SET leaves = CAST(leaves || x'00' AS BLOB) WHERE first = ` + pick, pick},
		{"lengths changed", `UPDATE audit_leaf_runs SET lens = CAST(x'0001' || substr(lens, 3) AS BLOB) WHERE first = ` + pick, pick},
		{"run moved up", `UPDATE audit_leaf_runs SET first = first + 1 WHERE first = ` + pick, pick},
		{"run moved down", `UPDATE audit_leaf_runs SET first = first - 1 WHERE first = ` + pickAfterLong, pickAfterLong},
		{"run deleted", `DELETE FROM audit_leaf_runs WHERE first = ` + pick, pick},
		{"last run deleted", `DELETE FROM audit_leaf_runs WHERE first = (SELECT max(first) FROM audit_leaf_runs)`,
			`(SELECT max(first) FROM audit_leaf_runs)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "latchkey.db")
			s := openStore(t, path)
			l := fillRuns(t, s)
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var want int64
			if err := db.QueryRowContext(ctx, `SELECT `+tt.want).Scan(&want); err != nil {
				t.Fatalf("%s: %v", tt.want, err)
			}
			if _, err := db.ExecContext(ctx, tt.sql); err != nil {
				t.Fatalf("%s: %v", tt.sql, err)
			}
			_, _, err = l.Verify(ctx, nil)
			var ve *audit.VerifyError
			if !errors.As(err, &ve) || ve.Index != want {
				t.Fatalf("Verify = %v, want a VerifyError at %d", err, want)
			}
		})
	}
}

// TestAuditRunEdits edits inside runs with Go, the way a careful attacker
// who knows the format would: records reordered within a run, and a run
// of hashes cut short.
func TestAuditRunEdits(t *testing.T) {
	ctx := t.Context()
	setup := func(t *testing.T) (*audit.Log, *sql.DB) {
		path := filepath.Join(t.TempDir(), "latchkey.db")
		l := fillRuns(t, openStore(t, path))
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return l, db
	}
	verifyAt := func(t *testing.T, l *audit.Log, want int64, reason string) {
		t.Helper()
		_, _, err := l.Verify(ctx, nil)
		var ve *audit.VerifyError
		if !errors.As(err, &ve) || ve.Index != want || !strings.Contains(ve.Reason, reason) {
			t.Fatalf("Verify = %v, want a VerifyError at %d: %s", err, want, reason)
		}
	}

	t.Run("swap in a run", func(t *testing.T) {
		l, db := setup(t)
		var first, n int64
		var lens, data []byte
		err := db.QueryRowContext(ctx, `SELECT first, n, lens, leaves FROM audit_leaf_runs
			WHERE n >= 2 AND first > 0 ORDER BY first LIMIT 1`).Scan(&first, &n, &lens, &data)
		if err != nil {
			t.Fatal(err)
		}
		leaves, ok := sqlite.DecodeLeafRun(n, lens, data)
		if !ok {
			t.Fatalf("run %d does not decode", first)
		}
		leaves[0], leaves[1] = leaves[1], leaves[0]
		lens, data = sqlite.EncodeLeafRun(leaves)
		if _, err := db.ExecContext(ctx, `UPDATE audit_leaf_runs SET lens = ?, leaves = ? WHERE first = ?`, lens, data, first); err != nil {
			t.Fatal(err)
		}
		verifyAt(t, l, first, "does not match the records")
	})

	t.Run("hash run cut short", func(t *testing.T) {
		l, db := setup(t)
		var first, count int64
		err := db.QueryRowContext(ctx, `SELECT first, length(hashes) / 32 FROM audit_hash_runs
			WHERE length(hashes) >= 64 AND first > 0 ORDER BY first LIMIT 1`).Scan(&first, &count)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE audit_hash_runs SET hashes = substr(hashes, 1, length(hashes) - 32) WHERE first = ?`, first); err != nil {
			t.Fatal(err)
		}
		x := first + count - 1
		level, i := tlog.SplitStoredHashIndex(x)
		verifyAt(t, l, (i+1)<<level-1, fmt.Sprintf("stored hash %d missing", x))
	})
}

// TestAuditSplitRuns checks that any partition of the log into runs is
// the same log: sqlitetest.OpenRaw's runs of one verify to the root of
// the runs the appends wrote, and read back the same records.
func TestAuditSplitRuns(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	l := fillRuns(t, openStore(t, path))
	size, root, err := l.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var most, hashes int64
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.QueryRowContext(ctx, `SELECT (SELECT max(n) FROM audit_leaf_runs), (SELECT max(length(hashes)) / 32 FROM audit_hash_runs)`).Scan(&most, &hashes)
	raw.Close()
	if err != nil || most != 128 || hashes != 512 {
		t.Fatalf("largest runs: %d records, %d hashes, %v; want 128 and 512 (a batch of 300 split)", most, hashes, err)
	}
	db, err := sqlitetest.OpenRaw(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var runs int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM audit_leaf_runs`).Scan(&runs); err != nil || runs != size {
		t.Fatalf("%d runs after the split, %v; want %d", runs, err, size)
	}
	size2, root2, err := l.Verify(ctx, nil)
	if err != nil || size2 != size || root2 != root {
		t.Fatalf("Verify after the split = %d, %v, %v; want %d, %v", size2, root2, err, size, root)
	}
	for _, i := range []int64{0, 1, 127, 128, size - 1} {
		if _, leaf, err := l.Record(ctx, i); err != nil || len(leaf) == 0 {
			t.Errorf("Record(%d) after the split = %v", i, err)
		}
	}
}

// TestAuditMigrateRuns opens a store that an older binary left with one
// row per record and per hash (schema version 13): the migration turns
// them into runs of the same log, which verifies to the same root and
// takes more appends.
func TestAuditMigrateRuns(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlite.MigrateTo(ctx, db, 13); err != nil {
		t.Fatal(err)
	}
	const n = 70
	h := audittest.NewHasher()
	leaves := audittest.Leaves(0, n)
	h.Add(leaves)
	for i, leaf := range leaves {
		if _, err := db.ExecContext(ctx, `INSERT INTO audit_records (idx, leaf) VALUES (?, ?)`, i, leaf); err != nil {
			t.Fatal(err)
		}
	}
	for x, v := range h.Hashes {
		if _, err := db.ExecContext(ctx, `INSERT INTO audit_hashes (idx, hash) VALUES (?, ?)`, x, v[:]); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openStore(t, path)
	l := audit.New(s.Audit(sqlite.SyncNormal), audit.Config{})
	defer l.Close()
	size, root, err := l.Verify(ctx, nil)
	if err != nil || size != n || root != h.Root(n) {
		t.Fatalf("Verify after the migration = %d, %v, %v; want %d, %v", size, root, err, n, h.Root(n))
	}
	for i := range int64(n) {
		if _, leaf, err := l.Record(ctx, i); err != nil || !bytes.Equal(leaf, leaves[i]) {
			t.Fatalf("Record(%d) after the migration = %v", i, err)
		}
	}
	if first, err := l.Append(ctx, audittest.Rec(n), audittest.Rec(n+1)); err != nil || first != n {
		t.Fatalf("Append after the migration = %d, %v", first, err)
	}
	h.Add(audittest.Leaves(n, 2))
	if size, root, err := l.Verify(ctx, nil); err != nil || root != h.Root(n+2) {
		t.Fatalf("Verify after more appends = %d, %v, %v", size, root, err)
	}
}

// FuzzLeafRun: decoding a stored run never panics, never yields a leaf
// over audit.MaxLeafSize, and accepts only what encodes back to the same
// columns.
func FuzzLeafRun(f *testing.F) {
	lens, data := sqlite.EncodeLeafRun(audittest.Leaves(0, 3))
	f.Add(int64(3), lens, data)
	f.Add(int64(1), []byte{0, 0}, []byte{})
	f.Add(int64(2), []byte{0, 1, 0, 1}, []byte{7})
	f.Add(int64(1), []byte{0xff, 0xff}, bytes.Repeat([]byte{1}, 300))
	f.Fuzz(func(t *testing.T, n int64, lens, data []byte) {
		leaves, ok := sqlite.DecodeLeafRun(n, lens, data)
		if !ok {
			if leaves != nil {
				t.Fatal("leaves returned with ok false")
			}
			return
		}
		if int64(len(leaves)) != n {
			t.Fatalf("%d leaves for n = %d", len(leaves), n)
		}
		for _, l := range leaves {
			if len(l) > audit.MaxLeafSize {
				t.Fatalf("a %d-byte leaf", len(l))
			}
		}
		l2, d2 := sqlite.EncodeLeafRun(leaves)
		if !bytes.Equal(l2, lens) || !bytes.Equal(d2, data) {
			t.Fatal("decoded run does not encode back to its columns")
		}
	})
}
