package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"latchkey/internal/store"
)

// descendants selects, for $1 a token id, the ids of every token derived
// from it, directly or not. UNION (not UNION ALL) keeps the walk finite
// even over a cycle, which the store never creates.
const descendants = `WITH RECURSIVE tree(id) AS (
		SELECT id FROM tokens WHERE derived_from = $1 AND derived_from <> ''
		UNION
		SELECT t.id FROM tokens t JOIN tree ON t.derived_from = tree.id
	)`

// CreateDerivedToken stores t, derived from t.DerivedFrom, after checking
// the parent in the same transaction; see store.Store.
func (s *Store) CreateDerivedToken(ctx context.Context, t store.Token) error {
	if t.DerivedFrom == "" || t.Admin {
		return fmt.Errorf("postgres: derived token %q: want a contractor token with DerivedFrom set", t.ID)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var contractor string
		var admin bool
		var revoked pgtype.Timestamptz
		var maxUses, uses int64
		err := tx.QueryRow(ctx, `SELECT contractor, admin, revoked_at, max_uses, uses FROM tokens WHERE id = $1 FOR UPDATE`,
			t.DerivedFrom).Scan(&contractor, &admin, &revoked, &maxUses, &uses)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: derive from token %q: %w", t.DerivedFrom, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("postgres: derive from token %q: %w", t.DerivedFrom, err)
		}
		if admin || contractor != t.Contractor {
			return fmt.Errorf("postgres: derive from token %q: not a token of contractor %q", t.DerivedFrom, t.Contractor)
		}
		if err := contractorUsable(ctx, tx, contractor); err != nil {
			return fmt.Errorf("postgres: derive from token %q: %w", t.DerivedFrom, err)
		}
		if revoked.Valid {
			return fmt.Errorf("postgres: derive from token %q: %w", t.DerivedFrom, store.ErrRevoked)
		}
		if maxUses > 0 {
			if t.MaxUses < 1 || t.MaxUses > maxUses-uses {
				return fmt.Errorf("postgres: derive %d uses from token %q with %d left: %w",
					t.MaxUses, t.DerivedFrom, maxUses-uses, store.ErrExhausted)
			}
			if _, err := tx.Exec(ctx, `UPDATE tokens SET uses = uses + $1 WHERE id = $2`, t.MaxUses, t.DerivedFrom); err != nil {
				return fmt.Errorf("postgres: derive from token %q: %w", t.DerivedFrom, err)
			}
		}
		return insertToken(ctx, tx, t)
	})
}

// DerivedTokens returns the unrevoked tokens derived from id, directly or
// not, ordered by creation time, id.
func (s *Store) DerivedTokens(ctx context.Context, id string) ([]store.Token, error) {
	ts, err := queryTokens(ctx, s.pool, descendants+` SELECT `+tokenColumns+` FROM tokens
		WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL ORDER BY created_at NULLS FIRST, id`, id)
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: tokens derived from %q: %w", id, err), s.pw)
	}
	return ts, nil
}

// scanIDs reads the one text column of every row.
func scanIDs(rows pgx.Rows, err error) ([]string, error) {
	return collect(rows, err, func(r pgx.Rows) (string, error) {
		var s string
		return s, r.Scan(&s)
	})
}

// RevokeTokenTree revokes token id and, in the same transaction, every
// unrevoked token derived from it; see store.Store.
func (s *Store) RevokeTokenTree(ctx context.Context, id, by, reason string, at time.Time) ([]string, error) {
	if err := nonZero(at); err != nil {
		return nil, err
	}
	var ids []string
	err := s.write(ctx, func(tx pgx.Tx) error {
		ids = nil // a retried transaction starts over
		old, err := lockToken(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("postgres: revoke token: %w", err)
		}
		if old.revoked {
			return fmt.Errorf("postgres: revoke token %q: %w", id, store.ErrRevoked)
		}
		_, err = tx.Exec(ctx, `UPDATE tokens SET revoked_at = $1, revoked_by = $2, revoked_reason = $3 WHERE id = $4`,
			msec(at), by, reason, id)
		if err != nil {
			return fmt.Errorf("postgres: revoke token %q: %w", id, err)
		}
		rows, err := tx.Query(ctx, descendants+` UPDATE tokens SET revoked_at = $2, revoked_by = $3, revoked_reason = $4
			WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL RETURNING id`,
			id, msec(at), by, store.RevokeParent)
		if ids, err = scanIDs(rows, err); err != nil {
			return fmt.Errorf("postgres: revoke tokens derived from %q: %w", id, err)
		}
		if err := invalidateTokens(ctx, tx, append([]string{id}, ids...)...); err != nil {
			return fmt.Errorf("postgres: revoke token tree: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}

// EndDerivedTokens moves the expiry of the unrevoked descendants of id
// that expire after at to at; see store.Store.
func (s *Store) EndDerivedTokens(ctx context.Context, id string, at time.Time) ([]string, error) {
	if err := nonZero(at); err != nil {
		return nil, err
	}
	var ids []string
	err := s.write(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, descendants+` UPDATE tokens SET expires_at = $2
			WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL AND expires_at > $2 RETURNING id`, id, msec(at))
		if ids, err = scanIDs(rows, err); err != nil {
			return fmt.Errorf("postgres: end tokens derived from %q: %w", id, err)
		}
		if err := invalidateTokens(ctx, tx, ids...); err != nil {
			return fmt.Errorf("postgres: end tokens derived from %q: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}
