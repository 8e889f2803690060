package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"latchkey/internal/audit"
)

var _ audit.Searcher = (*AuditStorage)(nil)

// Search implements audit.Searcher: newest first, through the column
// indexes of audit_records, every leaf decoded (a row whose leaf does not
// decode is an error: the log has been tampered with).
func (a *AuditStorage) Search(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
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
	q := "SELECT idx, leaf FROM audit_records"
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
	rows, err := a.s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit search: %w", err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		if err := rows.Scan(&e.Index, &e.Leaf); err != nil {
			return nil, fmt.Errorf("sqlite: audit search: %w", err)
		}
		if e.Record, err = audit.Decode(e.Leaf); err != nil {
			return nil, fmt.Errorf("sqlite: audit search: record %d: %w", e.Index, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit search: %w", err)
	}
	return out, nil
}

// CheckSearchColumns checks the search columns of the first size records
// against their leaves: the tree covers only the leaf, so a column edited
// in the database file could hide a record from Search without Verify
// noticing. It returns a *audit.VerifyError naming the first record whose
// columns differ from its leaf's fields, or whose leaf does not decode.
func (a *AuditStorage) CheckSearchColumns(ctx context.Context, size int64) error {
	const chunk = 8192
	for first := int64(0); first < size; first += chunk {
		rows, err := a.s.scan.QueryContext(ctx, `SELECT idx, leaf, time, actor, action, contractor, token_id, service, decision
			FROM audit_records WHERE idx >= ? AND idx < ? ORDER BY idx`, first, min(first+chunk, size))
		if err != nil {
			return fmt.Errorf("sqlite: audit columns: %w", err)
		}
		if err := checkColumns(rows); err != nil {
			return err
		}
	}
	return nil
}

func checkColumns(rows *sql.Rows) error {
	defer rows.Close()
	for rows.Next() {
		var idx, t int64
		var leaf []byte
		var actor, action, contractor, token, service, decision string
		if err := rows.Scan(&idx, &leaf, &t, &actor, &action, &contractor, &token, &service, &decision); err != nil {
			return fmt.Errorf("sqlite: audit columns: %w", err)
		}
		r, err := audit.Decode(leaf)
		if err != nil {
			return &audit.VerifyError{Index: idx, Reason: "record does not decode: " + err.Error()}
		}
		if t != r.Time.UnixNano() || actor != r.Actor || action != r.Action || contractor != r.Contractor ||
			token != r.TokenID || service != r.Service || decision != r.Decision {
			return &audit.VerifyError{Index: idx, Reason: "search columns differ from the record (edited to hide it from search)"}
		}
	}
	return rows.Err()
}
