package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/postgres"
	"latchkey/internal/store/postgres/pgtest"
)

func TestAuditStorage(t *testing.T) {
	for _, sync := range []postgres.Sync{postgres.SyncNormal, postgres.SyncFull} {
		t.Run(fmt.Sprint("sync=", sync), func(t *testing.T) {
			audittest.Run(t, func(t *testing.T) audit.Storage {
				return openStore(t, pgtest.DSN(t)).Audit(sync)
			})
		})
	}
}

// TestAuditTwoProcesses: two stores on one database, as two processes
// would have, append concurrently through their own Logs; the advisory
// lock makes every append see the other's, and each record is stored
// once at a dense index.
func TestAuditTwoProcesses(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := openStore(t, dsn), openStore(t, dsn)
	la := audit.New(a.Audit(postgres.SyncNormal), audit.Config{})
	defer la.Close()
	lb := audit.New(b.Audit(postgres.SyncNormal), audit.Config{})
	defer lb.Close()
	errs := make(chan error, 2)
	for i, l := range []*audit.Log{la, lb} {
		go func() {
			for j := range 200 {
				// The Log retries a conflict a few times, catching up
				// with the size the other process left; under this
				// contention it may still give up (a multi-writer
				// sequencer is not the storage's job): then again.
				_, err := l.Append(context.Background(), audittest.Rec(i*200+j))
				for errors.Is(err, audit.ErrConflict) {
					_, err = l.Append(context.Background(), audittest.Rec(i*200+j))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	audittest.CheckAll(t, la, 400)
}

// TestAppendAfterOtherWriter: an append at a size another writer has
// already moved past is refused with ErrConflict and changes nothing.
func TestAppendAfterOtherWriter(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	mine, theirs := openStore(t, dsn).Audit(postgres.SyncNormal), openStore(t, dsn).Audit(postgres.SyncNormal)
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

// TestAuditTamper edits the audit tables with raw SQL, as someone with
// access to the database would, and checks that Verify names the first
// bad record, or, for a truncation, that the log no longer extends a
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
		{name: "change", sql: []string{`UPDATE audit_records SET leaf = $1 WHERE idx = 37`},
			args: [][]any{{other}}, want: 37},
		{name: "garble", sql: []string{`UPDATE audit_records SET leaf = '\x01' WHERE idx = 37`}, want: 37},
		{name: "delete", sql: []string{`DELETE FROM audit_records WHERE idx = 37`}, want: 37},
		{name: "delete last", sql: []string{`DELETE FROM audit_records WHERE idx = 99`}, want: 99},
		{name: "insert at end", sql: []string{`INSERT INTO audit_records (idx, leaf) VALUES (100, $1)`},
			args: [][]any{{other}}, want: 100},
		{name: "insert", sql: []string{
			`UPDATE audit_records SET idx = idx + 1000 WHERE idx >= 37`,
			`UPDATE audit_records SET idx = idx - 999 WHERE idx >= 1000`,
			`INSERT INTO audit_records (idx, leaf) VALUES (37, $1)`},
			args: [][]any{nil, nil, {other}}, want: 37},
		{name: "swap", sql: []string{
			`UPDATE audit_records SET idx = 1000 WHERE idx = 20`,
			`UPDATE audit_records SET idx = 20 WHERE idx = 30`,
			`UPDATE audit_records SET idx = 30 WHERE idx = 1000`},
			want: 20},
		{name: "change hash", sql: []string{`UPDATE audit_hashes SET hash = '\x` + strings.Repeat("00", 32) + `' WHERE idx = $1`},
			args: [][]any{{hashRow(1, 25)}}, want: 51},
		{name: "delete hash", sql: []string{`DELETE FROM audit_hashes WHERE idx = $1`},
			args: [][]any{{hashRow(0, 60)}}, want: 60},
		{name: "truncate", sql: []string{
			`DELETE FROM audit_records WHERE idx >= 80`,
			`DELETE FROM audit_hashes WHERE idx >= $1`},
			args: [][]any{nil, {tlog.StoredHashCount(80)}}, trunc: 80},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := openStore(t, pgtest.DSN(t))
			l, old := fill(t, s, n)
			for i, q := range tt.sql {
				var args []any
				if i < len(tt.args) {
					args = tt.args[i]
				}
				if _, err := s.Pool().Exec(ctx, q, args...); err != nil {
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
			err = audit.CheckExtends(old, size, root, func(o, n int64) (tlog.TreeProof, error) { return l.ProveTree(ctx, o, n) })
			if !errors.As(err, &ve) || ve.Index != tt.trunc {
				t.Fatalf("CheckExtends = %v, want a VerifyError at %d", err, tt.trunc)
			}
		})
	}
}

// fill appends Rec(0) .. Rec(n-1) to a Log on s and returns the Log and a
// signed checkpoint of it, opened again.
func fill(t *testing.T, s *postgres.Store, n int) (*audit.Log, audit.Checkpoint) {
	t.Helper()
	l := audit.New(s.Audit(postgres.SyncNormal), audit.Config{})
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
	b, err := l.Checkpoint(t.Context(), signer)
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.LoadVerifier(filepath.Join(dir, audit.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := audit.OpenCheckpoint(b, v)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

// TestAuditRewrite rewrites one record and every stored hash with raw SQL,
// as a careful attacker with access to the database would: Verify
// passes, and the older checkpoint catches it.
func TestAuditRewrite(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, pgtest.DSN(t))
	l, old := fill(t, s, 100)
	if _, err := l.Append(ctx, audittest.Rec(100)); err != nil {
		t.Fatal(err)
	}
	db := s.Pool()
	if _, err := db.Exec(ctx, `UPDATE audit_records SET leaf = $1 WHERE idx = 10`, audittest.Rec(999).Encode()); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, `SELECT leaf FROM audit_records ORDER BY idx`)
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
		if _, err := db.Exec(ctx, `UPDATE audit_hashes SET hash = $1 WHERE idx = $2`, v[:], x); err != nil {
			t.Fatal(err)
		}
	}
	size, root, err := l.Verify(ctx, nil)
	if err != nil {
		t.Fatalf("Verify of a consistently rewritten log: %v", err)
	}
	err = audit.CheckExtends(old, size, root, func(o, n int64) (tlog.TreeProof, error) { return l.ProveTree(ctx, o, n) })
	if !errors.Is(err, audit.ErrNotExtend) {
		t.Errorf("CheckExtends = %v, want ErrNotExtend", err)
	}
}
