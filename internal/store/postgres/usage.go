package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

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
	// In id order, so that two batches lock their tokens in the same
	// order and never deadlock.
	uses = slices.SortedStableFunc(slices.Values(uses), func(a, b store.Use) int { return strings.Compare(a.TokenID, b.TokenID) })
	return s.writeCommitted(ctx, func(tx pgx.Tx) error {
		for _, u := range uses {
			if err := recordOne(ctx, tx, u); err != nil {
				return fmt.Errorf("postgres: record use of %q: %w", u.TokenID, err)
			}
		}
		return nil
	})
}

// recordOne applies one Use inside tx.
func recordOne(ctx context.Context, tx pgx.Tx, u store.Use) error {
	var contractor string
	err := tx.QueryRow(ctx, `UPDATE tokens SET uses = uses + $2,
			last_used_at = CASE WHEN $3::timestamptz IS NOT NULL AND (last_used_at IS NULL OR last_used_at < $3)
				THEN $3 ELSE last_used_at END
		WHERE id = $1 RETURNING contractor`, u.TokenID, u.Count, msec(u.At)).Scan(&contractor)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil || contractor == "" || u.At.IsZero() || len(u.Scopes) == 0 {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO scope_uses (contractor, scope, last_used_at)
		SELECT $1, scope, $3 FROM unnest($2::text[]) AS scope
		ON CONFLICT (contractor, scope) DO UPDATE SET last_used_at = excluded.last_used_at
		WHERE excluded.last_used_at > scope_uses.last_used_at`, contractor, dedupe(u.Scopes), msec(u.At))
	return err
}

// dedupe returns l without repeats (an INSERT ... ON CONFLICT may not
// change one row twice).
func dedupe(l []string) []string {
	seen := make(map[string]bool, len(l))
	out := l[:0:0]
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// ScopeUses lists the per-scope last use of every contractor whose last
// use is after since, ordered by contractor, scope. A zero since selects
// every recorded use.
func (s *Store) ScopeUses(ctx context.Context, since time.Time) ([]store.ScopeUse, error) {
	q := `SELECT contractor, scope, last_used_at FROM scope_uses`
	var args []any
	if !since.IsZero() {
		q += ` WHERE last_used_at > $1`
		args = append(args, bound(since))
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY contractor, scope`, args...)
	us, err := collect(rows, err, func(r pgx.Rows) (store.ScopeUse, error) {
		var u store.ScopeUse
		var last pgtype.Timestamptz
		err := r.Scan(&u.Contractor, &u.Scope, &last)
		u.LastUsedAt = timeOf(last)
		return u, err
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: scope uses: %w", err), s.pw)
	}
	return us, nil
}

// ConsumeUse counts one use of a token with a use limit in one
// statement: the row lock of the UPDATE makes concurrent callers, in any
// process, take their turn, so they can never pass the limit.
func (s *Store) ConsumeUse(ctx context.Context, id string, at time.Time) (int64, error) {
	if err := nonZero(at); err != nil {
		return 0, err
	}
	var uses int64
	err := s.writeCommitted(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE tokens SET uses = uses + 1,
				last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2 THEN $2 ELSE last_used_at END
			WHERE id = $1 AND max_uses > 0 AND uses < max_uses RETURNING uses`, id, msec(at)).Scan(&uses)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var limit int64
		switch err := tx.QueryRow(ctx, `SELECT max_uses FROM tokens WHERE id = $1`, id).Scan(&limit); {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("token %q: %w", id, store.ErrNotFound)
		case err != nil:
			return err
		case limit == 0:
			return fmt.Errorf("token %q has no use limit", id)
		}
		return fmt.Errorf("token %q: %w", id, store.ErrExhausted)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: consume use: %w", err)
	}
	return uses, nil
}
