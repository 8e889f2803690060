package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"latchkey/internal/audit"
)

// The audit search index lives in its own database file beside the
// store's, searchPath(path): appending a record writes only its leaf and
// hashes to the store (audit_records, audit_hashes), and the indexer fills
// audit_keys from the leaves behind the log, in large transactions on the
// other file's own writer, so that indexing never holds the store's
// writer, on which every gateway request waits. The index is derived data:
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

// indexer keeps the search index close behind the log.
func (s *Store) indexer() {
	defer close(s.ixDone)
	t := time.NewTicker(indexEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopCk:
			return
		case <-t.C:
			// A failure is retried on the next tick, and Search, which
			// catches up itself before reading, reports it.
			_ = s.indexAudit(context.Background())
		}
	}
}

// indexAudit indexes every stored record not yet in the search index. A
// leaf that does not decode is indexed with empty columns, so that a
// search reaching it reports it rather than hiding it.
func (s *Store) indexAudit(ctx context.Context) error {
	s.ixMu.Lock()
	defer s.ixMu.Unlock()
	var next int64
	if err := s.sw.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit_keys`).Scan(&next); err != nil {
		return fmt.Errorf("sqlite: audit index: %w", err)
	}
	for {
		rows, err := s.scan.QueryContext(ctx, `SELECT idx, leaf FROM audit_records WHERE idx >= ? ORDER BY idx LIMIT ?`, next, indexChunk)
		if err != nil {
			return fmt.Errorf("sqlite: audit index: %w", err)
		}
		var batch []indexRow
		for rows.Next() {
			var idx int64
			var leaf []byte
			if err := rows.Scan(&idx, &leaf); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: audit index: %w", err)
			}
			r, err := audit.Decode(leaf)
			if err != nil {
				r = audit.Record{} // indexed empty: see above
			}
			batch = append(batch, indexRow{idx, r})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlite: audit index: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		if err := s.insertIndex(ctx, batch); err != nil {
			return err
		}
		next = batch[len(batch)-1].idx + 1
	}
}

// indexRow is the search columns of one record.
type indexRow struct {
	idx int64
	r   audit.Record
}

func (s *Store) insertIndex(ctx context.Context, batch []indexRow) error {
	tx, err := s.sw.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: audit index: %w", err)
	}
	defer tx.Rollback()
	for len(batch) > 0 {
		k := min(len(batch), insertRows)
		args := make([]any, 0, 8*k)
		for _, b := range batch[:k] {
			c := colsOf(b.r)
			args = append(args, b.idx, c.time, c.contractor, c.token, c.service, c.action, c.decision, c.actor)
		}
		q := `INSERT INTO audit_keys (idx, time, contractor, token_id, service, action, decision, actor) VALUES ` + placeholders(k, 8)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("sqlite: audit index: %w", err)
		}
		batch = batch[k:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: audit index: %w", err)
	}
	return nil
}
