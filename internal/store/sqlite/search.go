package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"latchkey/internal/audit"
)

var _ audit.Searcher = (*AuditStorage)(nil)

// Search implements audit.Searcher: newest first. It brings the search
// index up to date, finds the matching indexes there, then reads and
// decodes their leaves from the log: what it returns is always the
// records themselves. An indexed record whose leaf is missing or does not
// decode is an error: the log has been tampered with.
func (a *AuditStorage) Search(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	if err := a.s.indexAudit(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: audit search: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, audit.MaxSearch)
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("contractor", f.Contractor)
	eq("token_id", f.TokenID)
	eq("service", f.Service)
	eq("action", f.Action)
	eq("decision", f.Decision)
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, f.Until.UnixNano())
	}
	if f.Before > 0 {
		where = append(where, "idx < ?")
		args = append(args, f.Before)
	}
	q := "SELECT idx FROM audit_index"
	if !f.Since.IsZero() && !f.Until.IsZero() {
		// A closed window: walk audit_by_time through it rather than
		// another index back from the newest record to the window's end.
		q += " INDEXED BY audit_by_time"
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY idx DESC LIMIT ?"
	args = append(args, limit)
	idxs, err := queryInts(ctx, a.s.sr, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit search: %w", err)
	}
	leaves, err := a.leavesAt(ctx, idxs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit search: %w", err)
	}
	out := make([]audit.Entry, 0, len(idxs))
	for _, idx := range idxs {
		leaf, ok := leaves[idx]
		if !ok {
			return nil, fmt.Errorf("sqlite: audit search: record %d is indexed but missing from the log: %w", idx, audit.ErrMissing)
		}
		e := audit.Entry{Index: idx, Leaf: leaf}
		if e.Record, err = audit.Decode(leaf); err != nil {
			return nil, fmt.Errorf("sqlite: audit search: record %d: %w", idx, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// queryInts runs q, which selects one integer column.
func queryInts(ctx context.Context, db *sql.DB, q string, args ...any) ([]int64, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// leavesAt reads the leaves of the records at idxs, by index; records
// that are not stored are absent from the map.
func (a *AuditStorage) leavesAt(ctx context.Context, idxs []int64) (map[int64][]byte, error) {
	out := make(map[int64][]byte, len(idxs))
	for rest := idxs; len(rest) > 0; {
		k := min(len(rest), 500)
		args := make([]any, k)
		for i, x := range rest[:k] {
			args[i] = x
		}
		rows, err := a.s.r.QueryContext(ctx, `SELECT idx, leaf FROM audit_records WHERE idx IN (`+
			strings.TrimSuffix(strings.Repeat("?,", k), ",")+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var idx int64
			var leaf []byte
			if err := rows.Scan(&idx, &leaf); err != nil {
				rows.Close()
				return nil, err
			}
			out[idx] = leaf
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
		rest = rest[k:]
	}
	return out, nil
}

// CheckSearchColumns checks the search index of the first size records
// against their leaves: the tree covers only the leaf, so an index row
// edited or deleted in the search database could hide a record from
// Search without Verify noticing. It brings the index up to date first,
// then returns a *audit.VerifyError naming the first record that is
// missing from the index, whose indexed columns differ from its leaf's
// fields, or whose leaf does not decode.
func (a *AuditStorage) CheckSearchColumns(ctx context.Context, size int64) error {
	if err := a.s.indexAudit(ctx); err != nil {
		return fmt.Errorf("sqlite: audit columns: %w", err)
	}
	const chunk = 8192
	for first := int64(0); first < size; first += chunk {
		end := min(first+chunk, size)
		cols, err := a.indexRows(ctx, first, end)
		if err != nil {
			return fmt.Errorf("sqlite: audit columns: %w", err)
		}
		leaves, err := a.ScanLeaves(ctx, first, int(end-first))
		if err != nil {
			return err
		}
		for _, l := range leaves {
			if l.Index >= end {
				break
			}
			c, ok := cols[l.Index]
			if !ok {
				return &audit.VerifyError{Index: l.Index, Reason: "record is missing from the search index (removed to hide it from search)"}
			}
			r, err := audit.Decode(l.Data)
			if err != nil {
				return &audit.VerifyError{Index: l.Index, Reason: "record does not decode: " + err.Error()}
			}
			if c != (indexCols{r.Time.UnixNano(), r.Actor, r.Action, r.Contractor, r.TokenID, r.Service, r.Decision}) {
				return &audit.VerifyError{Index: l.Index, Reason: "search columns differ from the record (edited to hide it from search)"}
			}
		}
	}
	return nil
}

// indexCols is one audit_index row without its index.
type indexCols struct {
	time                                                int64
	actor, action, contractor, token, service, decision string
}

// indexRows reads the search index rows of records first..end-1.
func (a *AuditStorage) indexRows(ctx context.Context, first, end int64) (map[int64]indexCols, error) {
	rows, err := a.s.sr.QueryContext(ctx, `SELECT idx, time, actor, action, contractor, token_id, service, decision
		FROM audit_index WHERE idx >= ? AND idx < ?`, first, end)
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
