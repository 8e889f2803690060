package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"latchkey/internal/audit"
)

// The audit search index, audit_index, is filled from the leaves behind
// the log by the indexer, in large transactions of their own, so that an
// append writes only what the Merkle tree covers. It is derived data:
// Search brings it up to date before it reads, and audit verify checks it
// against the leaves (CheckSearchColumns). Processes sharing the database
// may index the same records at once: the first insert of a row wins and
// the others skip it.

// indexEvery is how often the indexer catches up with the log, and
// indexChunk the most records one of its transactions indexes.
const (
	indexEvery = time.Second
	indexChunk = 4096
)

var _ audit.Searcher = (*AuditStorage)(nil)

// indexer keeps the search index close behind the log until Close.
func (s *Store) indexer() {
	defer close(s.ixDone)
	t := time.NewTicker(indexEvery)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-s.stop; cancel() }()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// A failure is retried on the next tick, and Search, which
			// catches up itself before reading, reports it.
			_ = s.indexAudit(ctx)
		}
	}
}

// indexAudit indexes every stored record past the last indexed one. A
// leaf that does not decode is indexed with empty columns, so that a
// search reaching it reports it rather than hiding it.
func (s *Store) indexAudit(ctx context.Context) error {
	s.ixMu.Lock()
	defer s.ixMu.Unlock()
	var next int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM audit_index`).Scan(&next); err != nil {
		return scrub(fmt.Errorf("postgres: audit index: %w", err), s.pw)
	}
	for {
		rows, err := s.pool.Query(ctx, `SELECT idx, leaf FROM audit_records WHERE idx >= $1 ORDER BY idx LIMIT $2`, next, indexChunk)
		batch, err := collect(rows, err, func(r pgx.Rows) (indexRow, error) {
			var row indexRow
			var leaf []byte
			if err := r.Scan(&row.idx, &leaf); err != nil {
				return row, err
			}
			rec, err := audit.Decode(leaf)
			if err != nil {
				rec = audit.Record{} // indexed empty: see above
			}
			row.cols = colsOf(rec)
			return row, nil
		})
		if err != nil {
			return scrub(fmt.Errorf("postgres: audit index: %w", err), s.pw)
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
	idx  int64
	cols indexCols
}

// indexCols is one audit_index row without its index.
type indexCols struct {
	time                                                int64
	actor, action, contractor, token, service, decision string
}

// colsOf is the search columns of r; time 0 for the zero time.
func colsOf(r audit.Record) indexCols {
	var t int64
	if !r.Time.IsZero() {
		t = r.Time.UnixNano()
	}
	return indexCols{t, text(r.Actor), text(r.Action), text(r.Contractor), text(r.TokenID), text(r.Service), text(r.Decision)}
}

// text is s as a text column can hold it: PostgreSQL refuses NUL in text,
// and a record may hold one (valid UTF-8), so each NUL is indexed, and
// searched for, as U+FFFD. Records are always read back from their
// leaves, unchanged.
func text(s string) string {
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

func (s *Store) insertIndex(ctx context.Context, batch []indexRow) error {
	n := len(batch)
	idx, tm := make([]int64, n), make([]int64, n)
	cols := make([][]string, 6)
	for i := range cols {
		cols[i] = make([]string, n)
	}
	for i, b := range batch {
		idx[i], tm[i] = b.idx, b.cols.time
		c := b.cols
		cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i] =
			c.actor, c.action, c.contractor, c.token, c.service, c.decision
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_index (idx, time, actor, action, contractor, token_id, service, decision)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
		ON CONFLICT (idx) DO NOTHING`,
		idx, tm, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5])
	if err != nil {
		return scrub(fmt.Errorf("postgres: audit index: %w", err), s.pw)
	}
	return nil
}

// Search implements audit.Searcher: newest first. It brings the search
// index up to date, finds the matching indexes there, then reads and
// decodes their leaves from the log: what it returns is always the
// records themselves. An indexed record whose leaf is missing or does not
// decode is an error: the log has been tampered with.
func (a *AuditStorage) Search(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	if err := a.s.indexAudit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: audit search: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, audit.MaxSearch)
	var w where
	eq := func(col, v string) {
		if v != "" {
			w.add(col+` = $%d`, text(v))
		}
	}
	eq("contractor", f.Contractor)
	eq("token_id", f.TokenID)
	eq("service", f.Service)
	eq("action", f.Action)
	eq("decision", f.Decision)
	if !f.Since.IsZero() {
		w.add(`time >= $%d`, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		w.add(`time < $%d`, f.Until.UnixNano())
	}
	if f.Before > 0 {
		w.add(`idx < $%d`, f.Before)
	}
	q := `SELECT idx FROM audit_index` + w.sql() + ` ORDER BY idx DESC LIMIT ` + w.next(limit)
	rows, err := a.s.pool.Query(ctx, q, w.args...)
	idxs, err := collect(rows, err, func(r pgx.Rows) (int64, error) {
		var v int64
		return v, r.Scan(&v)
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: audit search: %w", err), a.s.pw)
	}
	leaves, err := a.leavesAt(ctx, idxs)
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: audit search: %w", err), a.s.pw)
	}
	out := make([]audit.Entry, 0, len(idxs))
	for _, idx := range idxs {
		leaf, ok := leaves[idx]
		if !ok {
			return nil, fmt.Errorf("postgres: audit search: record %d is indexed but missing from the log: %w", idx, audit.ErrMissing)
		}
		e := audit.Entry{Index: idx, Leaf: leaf}
		if e.Record, err = audit.Decode(leaf); err != nil {
			return nil, fmt.Errorf("postgres: audit search: record %d: %w", idx, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// leavesAt reads the leaves of the records at idxs, by index; records
// that are not stored are absent from the map.
func (a *AuditStorage) leavesAt(ctx context.Context, idxs []int64) (map[int64][]byte, error) {
	out := make(map[int64][]byte, len(idxs))
	if len(idxs) == 0 {
		return out, nil
	}
	rows, err := a.s.pool.Query(ctx, `SELECT idx, leaf FROM audit_records WHERE idx = ANY($1)`, idxs)
	leaves, err := collect(rows, err, func(r pgx.Rows) (audit.Leaf, error) {
		var l audit.Leaf
		return l, r.Scan(&l.Index, &l.Data)
	})
	for _, l := range leaves {
		out[l.Index] = l.Data
	}
	return out, err
}

// CheckSearchColumns checks the search index of the first size records
// against their leaves: the tree covers only the leaf, so an index row
// edited or deleted could hide a record from Search without Verify
// noticing. It brings the index up to date first, then returns a
// *audit.VerifyError naming the first record that is missing from the
// index, whose indexed columns differ from its leaf's fields, or whose
// leaf does not decode.
func (a *AuditStorage) CheckSearchColumns(ctx context.Context, size int64) error {
	if err := a.s.indexAudit(ctx); err != nil {
		return fmt.Errorf("postgres: audit columns: %w", err)
	}
	rows := func(ctx context.Context, first, end int64) (map[int64]indexCols, error) {
		cols, err := a.indexRows(ctx, first, end)
		return cols, scrub(err, a.s.pw)
	}
	return audit.CheckIndex(ctx, a, size, rows, func(r audit.Record) indexCols {
		c := colsOf(r)
		c.time = r.Time.UnixNano()
		return c
	})
}

// indexRows reads the search index rows of records first..end-1.
func (a *AuditStorage) indexRows(ctx context.Context, first, end int64) (map[int64]indexCols, error) {
	rows, err := a.s.pool.Query(ctx, `SELECT idx, time, actor, action, contractor, token_id, service, decision
		FROM audit_index WHERE idx >= $1 AND idx < $2`, first, end)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]indexCols, end-first)
	for rows.Next() {
		var idx int64
		var c indexCols
		if err := rows.Scan(&idx, &c.time, &c.actor, &c.action, &c.contractor, &c.token, &c.service, &c.decision); err != nil {
			return nil, err
		}
		out[idx] = c
	}
	return out, rows.Err()
}
