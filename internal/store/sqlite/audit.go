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

// AuditStorage is the audit.Storage of a Store: tables audit_records and
// audit_hashes (migrations/0002_audit.sql). It shares the store's single
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

// insertRows is the most rows one INSERT statement carries.
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
	rows := leaves
	// Prepare the statements before the transaction takes the store's
	// only write connection: preparing needs that connection too.
	if err := a.prepare(ctx, len(rows), len(hashes)); err != nil {
		return err
	}
	a.mu.Lock()
	known := a.next == first
	a.next = -1 // until this append succeeds
	a.mu.Unlock()
	err := a.write(ctx, func(tx *sql.Tx) error {
		// After an append of ours that ended at first, the size check is
		// left out (it cost as much as the inserts of a small batch): a
		// writer elsewhere that appended since makes the inserts hit the
		// primary key instead, which is the same ErrConflict.
		if !known {
			if err := checkSizes(ctx, tx, first); err != nil {
				return err
			}
		}
		if err := a.insertRecords(ctx, tx, first, rows); err != nil {
			return err
		}
		if err := a.insertHashes(ctx, tx, tlog.StoredHashCount(first), hashes); err != nil {
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
	err := tx.QueryRowContext(ctx, `SELECT
		(SELECT coalesce(max(idx) + 1, 0) FROM audit_records),
		(SELECT coalesce(max(idx) + 1, 0) FROM audit_hashes)`).Scan(&size, &hashes)
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

func (a *AuditStorage) insertRecords(ctx context.Context, tx *sql.Tx, first int64, rows [][]byte) error {
	for len(rows) > 0 {
		k := min(len(rows), insertRows)
		args := make([]any, 0, 2*k)
		for i, leaf := range rows[:k] {
			args = append(args, first+int64(i), leaf)
		}
		if err := a.exec(ctx, tx, recordsInsert(k), args); err != nil {
			return err
		}
		rows, first = rows[k:], first+int64(k)
	}
	return nil
}

func (a *AuditStorage) insertHashes(ctx context.Context, tx *sql.Tx, first int64, hashes []tlog.Hash) error {
	for len(hashes) > 0 {
		k := min(len(hashes), insertRows)
		args := make([]any, 0, 2*k)
		for i := range hashes[:k] {
			args = append(args, first+int64(i), hashes[i][:])
		}
		if err := a.exec(ctx, tx, hashesInsert(k), args); err != nil {
			return err
		}
		hashes, first = hashes[k:], first+int64(k)
	}
	return nil
}

// Statement texts, by the number of rows one INSERT carries.
func recordsInsert(k int) string {
	return `INSERT INTO audit_records (idx, leaf) VALUES ` + placeholders(k, 2)
}

func hashesInsert(k int) string {
	return `INSERT INTO audit_hashes (idx, hash) VALUES ` + placeholders(k, 2)
}

// prepare makes sure the INSERTs for n records and h hashes are prepared
// (parsed once, kept for every later batch of the same shape).
func (a *AuditStorage) prepare(ctx context.Context, n, h int) error {
	var qs []string
	if n >= insertRows {
		qs = append(qs, recordsInsert(insertRows))
	}
	if n%insertRows != 0 {
		qs = append(qs, recordsInsert(n%insertRows))
	}
	if h >= insertRows {
		qs = append(qs, hashesInsert(insertRows))
	}
	if h%insertRows != 0 {
		qs = append(qs, hashesInsert(h%insertRows))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, q := range qs {
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
func (a *AuditStorage) exec(ctx context.Context, tx *sql.Tx, q string, args []any) error {
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
	err := a.s.r.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit_records`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: audit size: %w", err)
	}
	return n, nil
}

// ReadHashes implements audit.Storage (and so tlog.HashReader semantics).
func (a *AuditStorage) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	got := make(map[int64]tlog.Hash, len(indexes))
	err := a.s.read(ctx, func(tx *sql.Tx) error {
		for rest := indexes; len(rest) > 0; {
			k := min(len(rest), 500)
			args := make([]any, k)
			for i, x := range rest[:k] {
				args[i] = x
			}
			q := `SELECT idx, hash FROM audit_hashes WHERE idx IN (` + strings.TrimSuffix(strings.Repeat("?,", k), ",") + `)`
			hs, err := scanHashes(ctx, tx, q, args...)
			if err != nil {
				return err
			}
			for _, h := range hs {
				got[h.Index] = h.Hash
			}
			rest = rest[k:]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("sqlite: audit hash %d: %w", x, audit.ErrMissing)
		}
		out[i] = h
	}
	return out, nil
}

// queryer is a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// scanHashes runs q, which selects (idx, hash) rows.
func scanHashes(ctx context.Context, db queryer, q string, args ...any) ([]audit.StoredHash, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit hashes: %w", err)
	}
	defer rows.Close()
	var out []audit.StoredHash
	var b []byte
	for rows.Next() {
		var h audit.StoredHash
		if err := rows.Scan(&h.Index, &b); err != nil {
			return nil, fmt.Errorf("sqlite: audit hashes: %w", err)
		}
		if len(b) != tlog.HashSize {
			return nil, fmt.Errorf("sqlite: audit hash %d is %d bytes: %w", h.Index, len(b), audit.ErrCorrupt)
		}
		copy(h.Hash[:], b)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit hashes: %w", err)
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
	rows, err := a.s.scan.QueryContext(ctx,
		`SELECT idx, leaf FROM audit_records WHERE idx >= ? ORDER BY idx LIMIT ?`, first, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit records: %w", err)
	}
	defer rows.Close()
	out := make([]audit.Leaf, 0, min(limit, 8192))
	for rows.Next() {
		var l audit.Leaf
		if err := rows.Scan(&l.Index, &l.Data); err != nil {
			return nil, fmt.Errorf("sqlite: audit records: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit records: %w", err)
	}
	return out, nil
}

// ScanHashes implements audit.Storage.
func (a *AuditStorage) ScanHashes(ctx context.Context, first int64, limit int) ([]audit.StoredHash, error) {
	return scanHashes(ctx, a.s.scan,
		`SELECT idx, hash FROM audit_hashes WHERE idx >= ? ORDER BY idx LIMIT ?`, first, limit)
}

// String returns "normal" or "full", the --audit-sync spelling.
func (s Sync) String() string {
	if s == SyncFull {
		return "full"
	}
	return "normal"
}
