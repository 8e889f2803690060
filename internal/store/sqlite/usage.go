package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"latchkey/internal/store"
)

// RecordUse applies a batch of usage in one transaction: it raises each
// token's LastUsedAt (never lowers it), adds Count to Uses, and raises the
// per-scope last use of the token's contractor. Unknown token ids are
// ignored. A zero At adds Count and changes no time; admin tokens have no
// contractor, so their scopes are not recorded.
func (s *Store) RecordUse(ctx context.Context, uses []store.Use) error {
	if len(uses) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		tok, err := tx.PrepareContext(ctx, `UPDATE tokens SET uses = uses + ?2,
				last_used_at = CASE WHEN ?3 IS NOT NULL AND (last_used_at IS NULL OR last_used_at < ?3)
					THEN ?3 ELSE last_used_at END
			WHERE id = ?1 RETURNING contractor`)
		if err != nil {
			return fmt.Errorf("sqlite: record use: %w", err)
		}
		defer tok.Close()
		scope, err := tx.PrepareContext(ctx, `INSERT INTO scope_uses (contractor, scope, last_used_at)
			VALUES (?, ?, ?)
			ON CONFLICT (contractor, scope) DO UPDATE SET last_used_at = excluded.last_used_at
			WHERE excluded.last_used_at > last_used_at`)
		if err != nil {
			return fmt.Errorf("sqlite: record use: %w", err)
		}
		defer scope.Close()
		for _, u := range uses {
			if err := recordOne(ctx, tok, scope, u); err != nil {
				return fmt.Errorf("sqlite: record use of %q: %w", u.TokenID, err)
			}
		}
		return nil
	})
}

// recordOne applies one Use with the statements prepared by RecordUse.
func recordOne(ctx context.Context, tok, scope *sql.Stmt, u store.Use) error {
	var contractor string
	err := tok.QueryRowContext(ctx, u.TokenID, u.Count, msec(u.At)).Scan(&contractor)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil || contractor == "" || u.At.IsZero() {
		return err
	}
	for _, sc := range u.Scopes {
		if _, err := scope.ExecContext(ctx, contractor, sc, u.At.UnixMilli()); err != nil {
			return err
		}
	}
	return nil
}

// ScopeUses lists the per-scope last use of every contractor whose last
// use is after since, ordered by contractor, scope. A zero since selects
// every recorded use.
func (s *Store) ScopeUses(ctx context.Context, since time.Time) ([]store.ScopeUse, error) {
	after := int64(math.MinInt64)
	if !since.IsZero() {
		after = bound(since)
	}
	const from = ` FROM scope_uses WHERE last_used_at > ?`
	var us []store.ScopeUse
	err := s.readScan(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*)`+from, after).Scan(&n); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT contractor, scope, last_used_at`+from+` ORDER BY contractor, scope`, after)
		if err != nil {
			return err
		}
		in := interner{}
		var who, scope sql.RawBytes // kept from row to row
		us, err = scanInto(rows, make([]store.ScopeUse, 0, n), func(rows *sql.Rows) (store.ScopeUse, error) {
			var last sql.NullInt64
			err := rows.Scan(&who, &scope, &last)
			return store.ScopeUse{Contractor: in.str(who), Scope: in.str(scope), LastUsedAt: timeOf(last)}, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: scope uses: %w", err)
	}
	return us, nil
}

// ConsumeUse counts one use of a token with a use limit in one
// statement, so concurrent callers can never pass the limit.
func (s *Store) ConsumeUse(ctx context.Context, id string, at time.Time) (int64, error) {
	if err := nonZero(at); err != nil {
		return 0, err
	}
	var uses int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE tokens SET uses = uses + 1,
				last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ?2 THEN ?2 ELSE last_used_at END
			WHERE id = ?1 AND max_uses > 0 AND uses < max_uses RETURNING uses`, id, msec(at)).Scan(&uses)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var limit int64
		switch err := tx.QueryRowContext(ctx, `SELECT max_uses FROM tokens WHERE id = ?`, id).Scan(&limit); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("token %q: %w", id, store.ErrNotFound)
		case err != nil:
			return err
		case limit == 0:
			return fmt.Errorf("token %q has no use limit", id)
		}
		return fmt.Errorf("token %q: %w", id, store.ErrExhausted)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: consume use: %w", err)
	}
	return uses, nil
}
