package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
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
			args = append(args, searchKey(v))
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
	q := "SELECT idx FROM audit_keys"
	if !f.Since.IsZero() && !f.Until.IsZero() {
		// A closed window: walk audit_keys_time through it rather than
		// another index back from the newest record to the window's end.
		q += " INDEXED BY audit_keys_time"
	}
	q += " WHERE idx < ?"
	if len(where) > 0 {
		q += " AND " + strings.Join(where, " AND ")
	}
	q += " ORDER BY idx DESC LIMIT ?"
	before := f.Before
	if before <= 0 {
		before = math.MaxInt64
	}
	// The index narrows by hashes: keep the candidates whose record
	// matches, and ask for more past the last one while a page came
	// back full but left the answer short.
	out := make([]audit.Entry, 0, limit)
	for len(out) < limit {
		want := max(limit-len(out), 64)
		idxs, err := queryInts(ctx, a.s.sr, q, append(append([]any{before}, args...), want)...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit search: %w", err)
		}
		leaves, err := a.leavesAt(ctx, idxs)
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit search: %w", err)
		}
		for _, idx := range idxs {
			leaf, ok := leaves[idx]
			if !ok {
				return nil, fmt.Errorf("sqlite: audit search: record %d is indexed but missing from the log: %w", idx, audit.ErrMissing)
			}
			e := audit.Entry{Index: idx, Leaf: leaf}
			if e.Record, err = audit.Decode(leaf); err != nil {
				return nil, fmt.Errorf("sqlite: audit search: record %d: %w", idx, err)
			}
			if matches(e.Record, f) {
				if out = append(out, e); len(out) == limit {
					return out, nil
				}
			}
		}
		if len(idxs) < want {
			break
		}
		before = idxs[len(idxs)-1]
	}
	return out, nil
}

// matches reports whether r has the fields f asks for.
func matches(r audit.Record, f audit.Filter) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	return eq(f.Contractor, r.Contractor) && eq(f.TokenID, r.TokenID) && eq(f.Service, r.Service) &&
		eq(f.Action, r.Action) && eq(f.Decision, r.Decision) &&
		(f.Since.IsZero() || !r.Time.Before(f.Since)) && (f.Until.IsZero() || r.Time.Before(f.Until))
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
	return leavesAt(ctx, a.s.r, idxs)
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
	return audit.CheckIndex(ctx, a, size, a.indexRows, colsOf)
}

// indexCols is one audit_keys row without its index.
type indexCols struct {
	time                                                int64
	contractor, token, service, action, decision, actor int64
}

// colsOf is what the indexer stores for r.
func colsOf(r audit.Record) indexCols {
	var t int64
	if !r.Time.IsZero() {
		t = r.Time.UnixNano()
	}
	return indexCols{t, searchKey(r.Contractor), searchKey(r.TokenID), searchKey(r.Service),
		searchKey(r.Action), searchKey(r.Decision), searchKey(r.Actor)}
}

// indexRows reads the search index rows of records first..end-1.
func (a *AuditStorage) indexRows(ctx context.Context, first, end int64) (map[int64]indexCols, error) {
	rows, err := a.s.sr.QueryContext(ctx, `SELECT idx, time, contractor, token_id, service, action, decision, actor
		FROM audit_keys WHERE idx >= ? AND idx < ?`, first, end)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]indexCols, end-first)
	for rows.Next() {
		var idx int64
		var c indexCols
		if err := rows.Scan(&idx, &c.time, &c.contractor, &c.token, &c.service, &c.action, &c.decision, &c.actor); err != nil {
			return nil, err
		}
		out[idx] = c
	}
	return out, rows.Err()
}
