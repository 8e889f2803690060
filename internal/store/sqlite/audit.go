package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

// Sync is how durable an audit append is when it returns.
type Sync int

const (
	// SyncNormal commits to the write-ahead log without fsync, like every
	// other write of the store: a committed record survives a crash or kill
	// of the process, but a power loss or operating system crash can lose
	// the last records before the latest WAL checkpoint.
	SyncNormal Sync = iota
	// SyncFull also fsyncs the write-ahead log at every commit
	// (synchronous=FULL for the audit transaction), so a committed record
	// survives power loss too. Group commit shares one fsync among all the
	// records of a batch.
	SyncFull
)

// AuditStorage is the audit.Storage of a Store: tables audit_leaf_runs and
// audit_hash_runs (migrations/0014_audit_runs.sql, auditruns.go). It shares the store's single
// writer connection, so audit appends and other writes queue together.
type AuditStorage struct {
	s    *Store
	sync Sync

	mu    sync.Mutex
	stmts map[string]*sql.Stmt // prepared INSERTs by text: parsed once, not per batch
	// next is the log size after this storage's last successful append,
	// or -1: the size check is skipped when an append starts there.
	next int64
}

var _ audit.Storage = (*AuditStorage)(nil)

// Audit returns the audit log storage of s, appending with durability sync.
func (s *Store) Audit(sync Sync) *AuditStorage {
	return &AuditStorage{s: s, sync: sync, stmts: make(map[string]*sql.Stmt), next: -1}
}

// insertRows is the most rows one multi-row INSERT statement carries.
const insertRows = 128

// Append implements audit.Storage. It writes the leaves and hashes only;
// the search index follows (auditindex.go).
func (a *AuditStorage) Append(ctx context.Context, first int64, leaves [][]byte, hashes []tlog.Hash) error {
	return a.appendWith(ctx, first, leaves, hashes, nil)
}

// appendWith is Append, also running also (if not nil) in its transaction.
func (a *AuditStorage) appendWith(ctx context.Context, first int64, leaves [][]byte, hashes []tlog.Hash, also func(tx *sql.Tx) error) error {
	n := int64(len(leaves))
	if want := tlog.StoredHashCount(first+n) - tlog.StoredHashCount(first); int64(len(hashes)) != want {
		return fmt.Errorf("sqlite: audit append: %d hashes for records %d..%d, want %d", len(hashes), first, first+n-1, want)
	}
	for i, leaf := range leaves {
		if len(leaf) > audit.MaxLeafSize {
			return fmt.Errorf("sqlite: audit append: record %d is %d bytes, more than %d", first+int64(i), len(leaf), audit.MaxLeafSize)
		}
	}
	// Prepare the statements before the transaction takes the store's
	// only write connection: preparing needs that connection too.
	if err := a.prepare(ctx); err != nil {
		return err
	}
	a.mu.Lock()
	known := a.next == first
	a.next = -1 // until this append succeeds
	a.mu.Unlock()
	err := a.write(ctx, func(tx *sql.Tx) error {
		// After an append of ours that ended at first, the size check is
		// left out: a writer elsewhere that appended since began its
		// first run at first too, so the insert hits the primary key
		// instead, which is the same ErrConflict.
		if !known {
			if err := checkSizes(ctx, tx, first); err != nil {
				return err
			}
		}
		if err := a.insertLeafRuns(ctx, tx, first, leaves); err != nil {
			return err
		}
		if err := a.insertHashRuns(ctx, tx, tlog.StoredHashCount(first), hashes); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	if isUnique(err) {
		return fmt.Errorf("sqlite: audit append at %d: the log has grown meanwhile: %w", first, audit.ErrConflict)
	}
	if err == nil {
		a.mu.Lock()
		a.next = first + n
		a.mu.Unlock()
	}
	return err
}

// write runs fn in a write transaction with the durability of a.sync.
func (a *AuditStorage) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if a.sync == SyncNormal {
		return a.s.write(ctx, fn)
	}
	conn, err := a.s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: audit append: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return fmt.Errorf("sqlite: audit append: %w", err)
	}
	// Back to the store's setting for the other writes on this connection.
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// checkSizes fails with audit.ErrConflict unless the log holds exactly
// first records, and with audit.ErrCorrupt unless it holds their hashes.
func checkSizes(ctx context.Context, tx *sql.Tx, first int64) error {
	var size, hashes int64
	err := tx.QueryRowContext(ctx, `SELECT (`+leafCount+`), (`+hashCount+`)`).Scan(&size, &hashes)
	if err != nil {
		return fmt.Errorf("sqlite: audit append: %w", err)
	}
	if size != first {
		return fmt.Errorf("sqlite: audit append at %d: log has %d records: %w", first, size, audit.ErrConflict)
	}
	if want := tlog.StoredHashCount(size); hashes != want {
		return fmt.Errorf("sqlite: audit append: %d records but %d hashes, want %d: %w", size, hashes, want, audit.ErrCorrupt)
	}
	return nil
}

// insertLeafRuns stores leaves, the records from index first on, in
// runs of at most leafRun.
func (a *AuditStorage) insertLeafRuns(ctx context.Context, tx *sql.Tx, first int64, leaves [][]byte) error {
	for len(leaves) > 0 {
		k := min(len(leaves), leafRun)
		lens, data := encodeLeafRun(leaves[:k])
		if err := a.exec(ctx, tx, leafRunInsert, first, k, lens, data); err != nil {
			return err
		}
		leaves, first = leaves[k:], first+int64(k)
	}
	return nil
}

// insertHashRuns stores hashes, the stored hashes from index first on,
// in runs of at most hashRun.
func (a *AuditStorage) insertHashRuns(ctx context.Context, tx *sql.Tx, first int64, hashes []tlog.Hash) error {
	for len(hashes) > 0 {
		k := min(len(hashes), hashRun)
		if err := a.exec(ctx, tx, hashRunInsert, first, encodeHashRun(hashes[:k])); err != nil {
			return err
		}
		hashes, first = hashes[k:], first+int64(k)
	}
	return nil
}

const (
	leafRunInsert = `INSERT INTO audit_leaf_runs (first, n, lens, leaves) VALUES (?, ?, ?, ?)`
	hashRunInsert = `INSERT INTO audit_hash_runs (first, hashes) VALUES (?, ?)`
)

// prepare makes sure the two INSERTs are prepared (parsed once, kept for
// every later batch).
func (a *AuditStorage) prepare(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, q := range []string{leafRunInsert, hashRunInsert} {
		if a.stmts[q] != nil {
			continue
		}
		st, err := a.s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite: audit append: %w", err)
		}
		a.stmts[q] = st
	}
	return nil
}

// exec runs q, prepared by prepare, in tx.
func (a *AuditStorage) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	a.mu.Lock()
	st := a.stmts[q]
	a.mu.Unlock()
	if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("sqlite: audit append: %w", err)
	}
	return nil
}

// placeholders returns rows groups of cols "?" for a VALUES clause.
func placeholders(rows, cols int) string {
	one := "(" + strings.Repeat("?, ", cols-1) + "?)"
	return strings.Repeat(one+", ", rows-1) + one
}

// Size implements audit.Storage.
func (a *AuditStorage) Size(ctx context.Context) (int64, error) {
	var n int64
	if err := a.s.r.QueryRowContext(ctx, leafCount).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: audit size: %w", err)
	}
	return n, nil
}

// ReadHashes implements audit.Storage (and so tlog.HashReader semantics).
func (a *AuditStorage) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	err := a.s.read(ctx, func(tx *sql.Tx) error {
		var run hashRunRow // the run read last: proofs ask for neighbours
		for i, x := range indexes {
			if !run.holds(x) {
				var err error
				if run, err = hashRunAt(ctx, tx, x); err != nil {
					return err
				}
				if !run.holds(x) {
					return fmt.Errorf("sqlite: audit hash %d: %w", x, audit.ErrMissing)
				}
			}
			out[i] = run.hash(x)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadLeaves implements audit.Storage.
func (a *AuditStorage) ReadLeaves(ctx context.Context, first, n int64) ([][]byte, error) {
	if first < 0 || n < 0 {
		return nil, fmt.Errorf("sqlite: audit records %d+%d: %w", first, n, audit.ErrMissing)
	}
	leaves, err := a.ScanLeaves(ctx, first, int(n))
	if err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for i := range out {
		if i >= len(leaves) || leaves[i].Index != first+int64(i) {
			return nil, fmt.Errorf("sqlite: audit record %d: %w", first+int64(i), audit.ErrMissing)
		}
		out[i] = leaves[i].Data
	}
	return out, nil
}

// ScanLeaves implements audit.Storage.
func (a *AuditStorage) ScanLeaves(ctx context.Context, first int64, limit int) ([]audit.Leaf, error) {
	return scanLeaves(ctx, a.s.scan, first, limit)
}

// ScanHashes implements audit.Storage.
func (a *AuditStorage) ScanHashes(ctx context.Context, first int64, limit int) ([]audit.StoredHash, error) {
	return scanHashes(ctx, a.s.scan, first, limit)
}

// String returns "normal" or "full", the --audit-sync spelling.
func (s Sync) String() string {
	if s == SyncFull {
		return "full"
	}
	return "normal"
}
