package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"latchkey/internal/audit"
)

// The audit search index lives in its own database file beside the
// store's, searchPath(path): appending a record writes only its leaf and
// hashes to the store (audit_leaf_runs, audit_hash_runs), and the
// indexer fills audit_keys from the leaves behind the log, in large
// transactions on the other file's own writer, so that indexing never
// holds the store's writer, on which every gateway request waits. The
// index is derived data:
// Search brings it up to date before it reads, audit verify checks it
// against the leaves (CheckSearchColumns), and a missing file is rebuilt.
const searchSchema = `
DROP TABLE IF EXISTS audit_index;
CREATE TABLE IF NOT EXISTS audit_keys (
	idx        INTEGER PRIMARY KEY NOT NULL CHECK (idx >= 0),
	time       INTEGER NOT NULL,
	contractor INTEGER NOT NULL,
	token_id   INTEGER NOT NULL,
	service    INTEGER NOT NULL,
	action     INTEGER NOT NULL,
	decision   INTEGER NOT NULL,
	actor      INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit_keys_time       ON audit_keys (time);
CREATE INDEX IF NOT EXISTS audit_keys_contractor ON audit_keys (contractor);
CREATE INDEX IF NOT EXISTS audit_keys_token      ON audit_keys (token_id);
CREATE INDEX IF NOT EXISTS audit_keys_service    ON audit_keys (service);
CREATE INDEX IF NOT EXISTS audit_keys_action     ON audit_keys (action);
`

// searchKey is the indexed form of a searchable field: a 64-bit FNV-1a
// hash of the text, 0 for the empty text. Integers bind, compare and
// index several times cheaper than text in the engine, and the index
// only narrows: Search decodes every candidate record and keeps those
// whose fields equal the filter's, so a collision costs a candidate,
// never a wrong answer. (audit_index, the text columns of version 1 of
// this file, is dropped and rebuilt as audit_keys.)
func searchKey(s string) int64 {
	if s == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	return int64(h.Sum64())
}

// indexEvery is how often the indexer catches up with the log, and
// indexChunk the most records one of its transactions indexes.
const (
	indexEvery = time.Second
	indexChunk = 4096
)

// searchPath is the search index's file for the store at path:
// "latchkey.db" has "latchkey-search.db".
func searchPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + "-search.db"
}

// openSearch opens the search index database of the store at path,
// creating it if needed: one writer connection and a pool of readers.
func openSearch(ctx context.Context, path string) (w, r *sql.DB, err error) {
	p := searchPath(path)
	w, err = openPool(ctx, p, url.Values{
		"_txlock":       {"immediate"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"NORMAL"},
		// Statement journals of the multi-row INSERTs stay in memory.
		"_pragma": {"temp_store(MEMORY)"},
	})
	if err != nil {
		return nil, nil, err
	}
	w.SetMaxOpenConns(1)
	if _, err := w.ExecContext(ctx, searchSchema); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("sqlite: search index %s: %w", p, err)
	}
	r, err = openPool(ctx, p, url.Values{"_query_only": {"1"}})
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	return w, r, nil
}

// indexer keeps the search index close behind the log. With an external
// indexer (ExternalIndexer) it only watches how far behind the index is,
// and catches it up itself once that is more than the option's maxLag
// records: an indexer process at the idle priority gets no processor time
// while the gateway takes all of it, and a search must stay quick.
func (s *Store) indexer() {
	defer close(s.ixDone)
	t := time.NewTicker(indexEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopCk:
			return
		case <-t.C:
		}
		ctx := context.Background()
		if s.external && !s.lagging(ctx) {
			continue
		}
		// A failure is retried on the next tick, and Search, which
		// catches up itself before reading, reports it.
		_, _ = s.ix.catchUp(ctx, nil)
	}
}

// lagging reports whether the search index is more than maxLag records
// behind the log (or cannot tell).
func (s *Store) lagging(ctx context.Context) bool {
	var indexed, size int64
	if err := s.sr.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit_keys`).Scan(&indexed); err != nil {
		return true
	}
	if err := s.r.QueryRowContext(ctx, leafCount).Scan(&size); err != nil {
		return true
	}
	return size-indexed > s.maxLag
}

// indexAudit indexes every stored record not yet in the search index.
func (s *Store) indexAudit(ctx context.Context) error {
	_, err := s.ix.catchUp(ctx, nil)
	return err
}

// searchIndex fills the search index of a store file from its leaves.
// Several processes may fill one index at once (serve's indexer process,
// and serve itself when a search finds the index behind): each batch
// reads how far the index has reached inside its own write transaction,
// which holds the index file's lock, so no record is indexed twice.
type searchIndex struct {
	src *sql.DB    // the store file, read only
	w   *sql.DB    // the index file's writer
	mu  sync.Mutex // one catchUp at a time in this process
	// full is the INSERT of insertRows rows, prepared once on w: a
	// statement of a thousand parameters costs more to parse than its
	// rows to bind.
	full *sql.Stmt
}

// close closes the prepared statement (before w closes).
func (ix *searchIndex) close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.full == nil {
		return nil
	}
	err := ix.full.Close()
	ix.full = nil
	return err
}

// fullInsert is the INSERT of insertRows rows into audit_keys.
var fullInsert = insertKeys + placeholders(insertRows, 8)

const insertKeys = `INSERT INTO audit_keys (idx, time, contractor, token_id, service, action, decision, actor) VALUES `

// insert inserts the search columns of rows in tx, a statement of at
// most insertRows rows at a time.
func (ix *searchIndex) insert(ctx context.Context, tx *sql.Tx, rows []indexRow) error {
	args := make([]any, 0, 8*min(len(rows), insertRows))
	for len(rows) > 0 {
		k := min(len(rows), insertRows)
		args = args[:0]
		for _, b := range rows[:k] {
			c := colsOf(b.r)
			args = append(args, b.idx, c.time, c.contractor, c.token, c.service, c.action, c.decision, c.actor)
		}
		rows = rows[k:]
		if k < insertRows {
			if _, err := tx.ExecContext(ctx, insertKeys+placeholders(k, 8), args...); err != nil {
				return err
			}
			continue
		}
		if _, err := tx.StmtContext(ctx, ix.full).ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// catchUp indexes every stored record not yet in the search index, in
// transactions of up to indexChunk records, calling progress (if not nil)
// after each with the count so far. A leaf that does
// not decode is indexed with empty columns, so that a search reaching it
// reports it rather than hiding it.
func (ix *searchIndex) catchUp(ctx context.Context, progress func(done int64)) (int64, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var done int64
	for {
		n, err := ix.step(ctx)
		if err != nil {
			return done, fmt.Errorf("sqlite: audit index: %w", err)
		}
		done += int64(n)
		if progress != nil {
			progress(done)
		}
		if n == 0 {
			return done, nil
		}
	}
}

// step indexes up to indexChunk records in one transaction, and returns
// how many.
func (ix *searchIndex) step(ctx context.Context) (int, error) {
	if ix.full == nil { // before BeginTx takes w's one connection
		st, err := ix.w.PrepareContext(ctx, fullInsert)
		if err != nil {
			return 0, err
		}
		ix.full = st
	}
	tx, err := ix.w.BeginTx(ctx, nil) // IMMEDIATE: the file's write lock
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var next int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit_keys`).Scan(&next); err != nil {
		return 0, err
	}
	batch, err := ix.leaves(ctx, next)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	if err := ix.insert(ctx, tx, batch); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return len(batch), nil
}

// leaves reads and decodes up to indexChunk records from index next on.
// A record that does not decode, or whose run does not frame, is indexed
// empty (see catchUp).
func (ix *searchIndex) leaves(ctx context.Context, next int64) ([]indexRow, error) {
	var batch []indexRow
	err := scanLeafRuns(ctx, ix.src, next, func(run leafRunRow) bool {
		for i := range run.n {
			x := run.first + i
			if x < next || len(batch) >= indexChunk {
				continue // before next, or a run overlapping the last
			}
			next = x + 1
			var r audit.Record
			if run.leaves != nil {
				if d, err := audit.Decode(run.leaves[i]); err == nil {
					r = d
				}
			}
			batch = append(batch, indexRow{x, r})
		}
		return len(batch) < indexChunk
	})
	return batch, err
}

// indexRow is the search columns of one record.
type indexRow struct {
	idx int64
	r   audit.Record
}

// errNotMigrated: IndexAudit found a store that its binary has not
// brought up to date (or a newer one): it does not migrate, serve does.
var errNotMigrated = errors.New("store schema is not this binary's: start serve (which migrates it) with the same binary")

// IndexAudit brings the audit search index of the store file at path up
// to date, then, if every is positive, again every that until ctx is
// done. It is the indexer process that serve runs beside itself (with
// ExternalIndexer), at a low priority, so that indexing's work competes
// with the gateway's only for the processor time the gateway leaves; and
// a way to rebuild a deleted index. It reads the store without writing
// it, and refuses one whose schema its binary does not have exactly.
// progress, if not nil, is called after each transaction with the
// records in the index and the log's size when the catch-up began.
func IndexAudit(ctx context.Context, path string, every time.Duration, progress func(done, size int64)) error {
	err := indexFile(ctx, path, every, progress)
	if every > 0 && ctx.Err() != nil {
		return nil // --follow stopped, wherever it was
	}
	return err
}

func indexFile(ctx context.Context, path string, every time.Duration, progress func(done, size int64)) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("sqlite: audit index: %w", err)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("sqlite: audit index: %w", err)
	}
	src, err := openPool(ctx, path, url.Values{
		"_query_only": {"1"},
		"_pragma":     {fmt.Sprintf("mmap_size(%d)", mmapSize)},
	})
	if err != nil {
		return err
	}
	defer src.Close()
	src.SetMaxOpenConns(1)
	ms, err := migrations()
	if err != nil {
		return err
	}
	var version int
	if err := src.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("sqlite: audit index: %s: %w", path, err)
	}
	if version != len(ms) {
		return fmt.Errorf("sqlite: audit index: %s is at schema version %d, this binary's is %d: %w", path, version, len(ms), errNotMigrated)
	}
	w, r, err := openSearch(ctx, path)
	if err != nil {
		return err
	}
	defer w.Close()
	r.Close()
	ix := &searchIndex{src: src, w: w}
	defer ix.close()
	round := func() error {
		var from, size int64
		if err := w.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit_keys`).Scan(&from); err != nil {
			return fmt.Errorf("sqlite: audit index: %w", err)
		}
		if err := src.QueryRowContext(ctx, leafCount).Scan(&size); err != nil {
			return fmt.Errorf("sqlite: audit index: %w", err)
		}
		var p func(int64)
		if progress != nil {
			p = func(done int64) { progress(from+done, size) }
		}
		_, err := ix.catchUp(ctx, p)
		return err
	}
	for {
		if err := round(); err != nil || every <= 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
