package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

// Sync is how durable an audit append is when it returns.
type Sync int

const (
	// SyncNormal commits with the server's synchronous_commit setting
	// (PostgreSQL's default, on, flushes the WAL at every commit).
	SyncNormal Sync = iota
	// SyncFull commits every append with synchronous_commit = on, whatever
	// the server, database or role sets, so that a committed record
	// survives a crash of the database server's host.
	SyncFull
)

// String returns "normal" or "full", the --audit-sync spelling.
func (s Sync) String() string {
	if s == SyncFull {
		return "full"
	}
	return "normal"
}

// auditLockKey is the key of the transaction advisory lock every Append
// takes first: appends of every process on the database take turns. (The
// key is "lk-audit" in ASCII.)
const auditLockKey int64 = 0x6c6b2d6175646974

// AuditStorage is the audit.Storage of a Store: tables audit_records and
// audit_hashes, and the search index audit_index (search.go).
type AuditStorage struct {
	s    *Store
	sync Sync
}

var _ audit.Storage = (*AuditStorage)(nil)

// Audit returns the audit log storage of s, appending with durability sync.
func (s *Store) Audit(sync Sync) *AuditStorage {
	return &AuditStorage{s: s, sync: sync}
}

// Append implements audit.Storage. In one READ COMMITTED transaction it
// takes the advisory lock auditLockKey, so that appends of every process
// take turns, then checks that the log holds exactly first records (each
// statement after the lock sees every append committed before it took
// the lock) and inserts the leaves and hashes.
func (a *AuditStorage) Append(ctx context.Context, first int64, leaves [][]byte, hashes []tlog.Hash) error {
	n := int64(len(leaves))
	if want := tlog.StoredHashCount(first+n) - tlog.StoredHashCount(first); int64(len(hashes)) != want {
		return fmt.Errorf("postgres: audit append: %d hashes for records %d..%d, want %d", len(hashes), first, first+n-1, want)
	}
	err := pgx.BeginTxFunc(ctx, a.s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLockKey); err != nil {
			return fmt.Errorf("postgres: audit append: lock: %w", err)
		}
		if a.sync == SyncFull {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
				return fmt.Errorf("postgres: audit append: %w", err)
			}
		}
		if err := checkSizes(ctx, tx, first); err != nil {
			return err
		}
		return insertTree(ctx, tx, first, leaves, hashes)
	})
	if isUnique(err) {
		return fmt.Errorf("postgres: audit append at %d: the log has grown meanwhile: %w", first, audit.ErrConflict)
	}
	return scrub(err, a.s.pw)
}

// insertTree inserts leaves at first and their stored hashes.
func insertTree(ctx context.Context, tx pgx.Tx, first int64, leaves [][]byte, hashes []tlog.Hash) error {
	idx := make([]int64, len(leaves))
	for i := range idx {
		idx[i] = first + int64(i)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_records (idx, leaf) SELECT * FROM unnest($1::bigint[], $2::bytea[])`,
		idx, leaves); err != nil {
		return fmt.Errorf("postgres: audit append: %w", err)
	}
	base := tlog.StoredHashCount(first)
	hidx := make([]int64, len(hashes))
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		hidx[i], hs[i] = base+int64(i), hashes[i][:]
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`,
		hidx, hs); err != nil {
		return fmt.Errorf("postgres: audit append: %w", err)
	}
	return nil
}

// checkSizes fails with audit.ErrConflict unless the log holds exactly
// first records, and with audit.ErrCorrupt unless it holds their hashes.
func checkSizes(ctx context.Context, tx pgx.Tx, first int64) error {
	var size, hashes int64
	err := tx.QueryRow(ctx, `SELECT
		(SELECT coalesce(max(idx) + 1, 0) FROM audit_records),
		(SELECT coalesce(max(idx) + 1, 0) FROM audit_hashes)`).Scan(&size, &hashes)
	if err != nil {
		return fmt.Errorf("postgres: audit append: %w", err)
	}
	if size != first {
		return fmt.Errorf("postgres: audit append at %d: log has %d records: %w", first, size, audit.ErrConflict)
	}
	if want := tlog.StoredHashCount(size); hashes != want {
		return fmt.Errorf("postgres: audit append: %d records but %d hashes, want %d: %w", size, hashes, want, audit.ErrCorrupt)
	}
	return nil
}

// Size implements audit.Storage.
func (a *AuditStorage) Size(ctx context.Context) (int64, error) {
	var n int64
	if err := a.s.pool.QueryRow(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit_records`).Scan(&n); err != nil {
		return 0, scrub(fmt.Errorf("postgres: audit size: %w", err), a.s.pw)
	}
	return n, nil
}

// ReadHashes implements audit.Storage (and so tlog.HashReader semantics).
func (a *AuditStorage) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	hs, err := scanHashes(ctx, a.s.pool, `SELECT idx, hash FROM audit_hashes WHERE idx = ANY($1)`, indexes)
	if err != nil {
		return nil, scrub(err, a.s.pw)
	}
	got := make(map[int64]tlog.Hash, len(hs))
	for _, h := range hs {
		got[h.Index] = h.Hash
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("postgres: audit hash %d: %w", x, audit.ErrMissing)
		}
		out[i] = h
	}
	return out, nil
}

// scanHashes runs q, which selects (idx, hash) rows.
func scanHashes(ctx context.Context, q querier, sql string, args ...any) ([]audit.StoredHash, error) {
	rows, err := q.Query(ctx, sql, args...)
	out, err := collect(rows, err, func(r pgx.Rows) (audit.StoredHash, error) {
		var h audit.StoredHash
		var b []byte
		if err := r.Scan(&h.Index, &b); err != nil {
			return h, err
		}
		if len(b) != tlog.HashSize {
			return h, fmt.Errorf("audit hash %d is %d bytes: %w", h.Index, len(b), audit.ErrCorrupt)
		}
		copy(h.Hash[:], b)
		return h, nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: audit hashes: %w", err)
	}
	return out, nil
}

// ReadLeaves implements audit.Storage.
func (a *AuditStorage) ReadLeaves(ctx context.Context, first, n int64) ([][]byte, error) {
	if first < 0 || n < 0 {
		return nil, fmt.Errorf("postgres: audit records %d+%d: %w", first, n, audit.ErrMissing)
	}
	leaves, err := a.ScanLeaves(ctx, first, int(n))
	if err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for i := range out {
		if i >= len(leaves) || leaves[i].Index != first+int64(i) {
			return nil, fmt.Errorf("postgres: audit record %d: %w", first+int64(i), audit.ErrMissing)
		}
		out[i] = leaves[i].Data
	}
	return out, nil
}

// ScanLeaves implements audit.Storage.
func (a *AuditStorage) ScanLeaves(ctx context.Context, first int64, limit int) ([]audit.Leaf, error) {
	rows, err := a.s.pool.Query(ctx, `SELECT idx, leaf FROM audit_records WHERE idx >= $1 ORDER BY idx LIMIT $2`, first, limit)
	out, err := collect(rows, err, func(r pgx.Rows) (audit.Leaf, error) {
		var l audit.Leaf
		return l, r.Scan(&l.Index, &l.Data)
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: audit records: %w", err), a.s.pw)
	}
	return out, nil
}

// ScanHashes implements audit.Storage.
func (a *AuditStorage) ScanHashes(ctx context.Context, first int64, limit int) ([]audit.StoredHash, error) {
	hs, err := scanHashes(ctx, a.s.pool, `SELECT idx, hash FROM audit_hashes WHERE idx >= $1 ORDER BY idx LIMIT $2`, first, limit)
	return hs, scrub(err, a.s.pw)
}
