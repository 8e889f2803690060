package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

// The audit tree is stored in runs (migrations/0014_audit_runs.sql): one
// row of audit_leaf_runs holds up to leafRun consecutive records, one row
// of audit_hash_runs up to hashRun consecutive stored hashes. An append
// writes a few rows per batch instead of about three per record, which
// made most of the cost of adding records to the tree.
//
// Nothing but the tree's own check vouches for a row: a reader decodes
// each run strictly, and a run that does not frame, or that does not
// start where the one before it ends, reads as records or hashes missing
// from there on, which audit verify reports at the first such index.
const (
	// leafRun is the most records one run holds: reading one record
	// (a proof, a search hit) reads its whole run, at most leafRun
	// leaves of at most audit.MaxLeafSize bytes (usually a few hundred).
	leafRun = 128
	// hashRun is the most stored hashes one run holds (16 KiB).
	hashRun = 512
)

// Queries over the runs. leafCount and hashCount are the log's size and
// its number of stored hashes, as the last run says.
const (
	leafCount = `SELECT coalesce((SELECT first + n FROM audit_leaf_runs ORDER BY first DESC LIMIT 1), 0)`
	hashCount = `SELECT coalesce((SELECT first + length(hashes) / 32 FROM audit_hash_runs ORDER BY first DESC LIMIT 1), 0)`
	// leafRunsFrom reads the runs from the one holding record ?1 on.
	leafRunsFrom = `SELECT first, n, lens, leaves FROM audit_leaf_runs
		WHERE first >= coalesce((SELECT first FROM audit_leaf_runs WHERE first <= ?1 ORDER BY first DESC LIMIT 1), 0)
		ORDER BY first`
	leafRunAt    = `SELECT first, n, lens, leaves FROM audit_leaf_runs WHERE first <= ? ORDER BY first DESC LIMIT 1`
	hashRunsFrom = `SELECT first, hashes FROM audit_hash_runs
		WHERE first >= coalesce((SELECT first FROM audit_hash_runs WHERE first <= ?1 ORDER BY first DESC LIMIT 1), 0)
		ORDER BY first`
	hashRunAtQuery = `SELECT first, hashes FROM audit_hash_runs WHERE first <= ? ORDER BY first DESC LIMIT 1`
)

// encodeLeafRun returns the lens and leaves columns of a run of leaves,
// each at most audit.MaxLeafSize bytes.
func encodeLeafRun(leaves [][]byte) (lens, data []byte) {
	size := 0
	for _, l := range leaves {
		size += len(l)
	}
	lens = make([]byte, 2*len(leaves))
	data = make([]byte, 0, size)
	for i, l := range leaves {
		binary.BigEndian.PutUint16(lens[2*i:], uint16(len(l)))
		data = append(data, l...)
	}
	return lens, data
}

// decodeLeafRun splits the leaves column of a run of n records by its
// lens column; ok is false if they do not frame exactly n leaves of at
// most audit.MaxLeafSize bytes that fill data. The leaves share data.
func decodeLeafRun(n int64, lens, data []byte) (leaves [][]byte, ok bool) {
	if n < 1 || n > 256 || int64(len(lens)) != 2*n {
		return nil, false
	}
	leaves = make([][]byte, n)
	off := 0
	for i := range leaves {
		l := int(binary.BigEndian.Uint16(lens[2*i:]))
		if l > audit.MaxLeafSize || l > len(data)-off {
			return nil, false
		}
		leaves[i] = data[off : off+l : off+l]
		off += l
	}
	if off != len(data) {
		return nil, false
	}
	return leaves, true
}

// encodeHashRun returns the hashes column of a run.
func encodeHashRun(hashes []tlog.Hash) []byte {
	b := make([]byte, 0, tlog.HashSize*len(hashes))
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

// queryer is a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// leafRunRow is one row of audit_leaf_runs: leaves is nil if it does not
// frame (decodeLeafRun).
type leafRunRow struct {
	first, n int64
	leaves   [][]byte
}

// holds reports whether r holds record i, readable.
func (r leafRunRow) holds(i int64) bool {
	return r.leaves != nil && i >= r.first && i < r.first+int64(len(r.leaves))
}

// scanLeafRuns calls fn with each run from the one holding record first
// on, in index order, until fn returns false.
func scanLeafRuns(ctx context.Context, db queryer, first int64, fn func(leafRunRow) bool) error {
	rows, err := db.QueryContext(ctx, leafRunsFrom, first)
	if err != nil {
		return fmt.Errorf("sqlite: audit records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r leafRunRow
		var lens, data []byte
		if err := rows.Scan(&r.first, &r.n, &lens, &data); err != nil {
			return fmt.Errorf("sqlite: audit records: %w", err)
		}
		r.leaves, _ = decodeLeafRun(r.n, lens, data)
		if !fn(r) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: audit records: %w", err)
	}
	return nil
}

// scanLeaves returns, in index order, at most limit leaves from index
// first on. It stops early at a run that does not frame or does not
// start where the one before it ended: the records from there on read
// as missing.
func scanLeaves(ctx context.Context, db queryer, first int64, limit int) ([]audit.Leaf, error) {
	out := make([]audit.Leaf, 0, min(limit, 8192))
	next := int64(-1) // where the next run must start
	err := scanLeafRuns(ctx, db, first, func(r leafRunRow) bool {
		if r.leaves == nil || (next >= 0 && r.first != next) {
			return false
		}
		next = r.first + r.n
		for i, l := range r.leaves {
			if x := r.first + int64(i); x >= first && len(out) < limit {
				out = append(out, audit.Leaf{Index: x, Data: l})
			}
		}
		return len(out) < limit
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// leavesAt reads the leaves of the records at idxs, by index; records
// that are not stored are absent from the map.
func leavesAt(ctx context.Context, db queryer, idxs []int64) (map[int64][]byte, error) {
	sorted := slices.Clone(idxs)
	slices.Sort(sorted)
	out := make(map[int64][]byte, len(idxs))
	var run leafRunRow
	for _, x := range slices.Compact(sorted) {
		if !run.holds(x) {
			var lens, data []byte
			run = leafRunRow{}
			err := db.QueryRowContext(ctx, leafRunAt, x).Scan(&run.first, &run.n, &lens, &data)
			if err == sql.ErrNoRows {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("sqlite: audit records: %w", err)
			}
			run.leaves, _ = decodeLeafRun(run.n, lens, data)
			if !run.holds(x) {
				continue
			}
		}
		out[x] = run.leaves[x-run.first]
	}
	return out, nil
}

// hashRunRow is one row of audit_hash_runs; hashes is nil if its length
// is not a whole number of hashes.
type hashRunRow struct {
	first  int64
	hashes []byte
}

func (r hashRunRow) count() int64 { return int64(len(r.hashes) / tlog.HashSize) }

// holds reports whether r holds stored hash x.
func (r hashRunRow) holds(x int64) bool { return x >= r.first && x < r.first+r.count() }

// hash returns stored hash x, which r holds.
func (r hashRunRow) hash(x int64) tlog.Hash {
	var h tlog.Hash
	copy(h[:], r.hashes[(x-r.first)*tlog.HashSize:])
	return h
}

// scanHashRow reads one row of audit_hash_runs.
func scanHashRow(scan func(...any) error) (hashRunRow, error) {
	var r hashRunRow
	if err := scan(&r.first, &r.hashes); err != nil {
		return r, err
	}
	if len(r.hashes)%tlog.HashSize != 0 {
		r.hashes = nil
	}
	return r, nil
}

// hashRunAt returns the run that should hold stored hash x: the last one
// starting at or before it (it may not hold x).
func hashRunAt(ctx context.Context, tx *sql.Tx, x int64) (hashRunRow, error) {
	r, err := scanHashRow(tx.QueryRowContext(ctx, hashRunAtQuery, x).Scan)
	if err != nil && err != sql.ErrNoRows {
		return r, fmt.Errorf("sqlite: audit hashes: %w", err)
	}
	return r, nil
}

// scanHashes returns, in index order, at most limit stored hashes from
// index first on, stopping early like scanLeaves.
func scanHashes(ctx context.Context, db queryer, first int64, limit int) ([]audit.StoredHash, error) {
	rows, err := db.QueryContext(ctx, hashRunsFrom, first)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit hashes: %w", err)
	}
	defer rows.Close()
	var out []audit.StoredHash
	next := int64(-1)
	for len(out) < limit && rows.Next() {
		r, err := scanHashRow(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit hashes: %w", err)
		}
		if r.hashes == nil || (next >= 0 && r.first != next) {
			break
		}
		next = r.first + r.count()
		for x := max(first, r.first); x < next && len(out) < limit; x++ {
			out = append(out, audit.StoredHash{Index: x, Hash: r.hash(x)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit hashes: %w", err)
	}
	return out, nil
}
