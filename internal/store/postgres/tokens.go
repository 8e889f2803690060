package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"latchkey/internal/store"
)

const tokenColumns = `id, admin, contractor, scopes, hash, expires_at, cidrs, max_uses, uses, note,
	created_at, created_by, last_used_at, revoked_at, revoked_by, parent, revoked_reason, derived_from, cnf_jkt, cnf_x5t`

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// CreateToken stores t. store.ErrConflict if the id exists; for a
// contractor token store.ErrNotFound if the contractor does not exist and
// store.ErrDisabled if it is disabled. An admin token must not name a
// contractor.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		return insertToken(ctx, tx, t)
	})
}

// insertToken checks t's contractor and inserts t, inside tx.
func insertToken(ctx context.Context, tx pgx.Tx, t store.Token) error {
	if t.Admin && t.Contractor != "" {
		return fmt.Errorf("postgres: token %q: admin token names contractor %q", t.ID, t.Contractor)
	}
	if !t.Admin {
		if err := contractorUsable(ctx, tx, t.Contractor); err != nil {
			return fmt.Errorf("postgres: token %q: %w", t.ID, err)
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO tokens (`+tokenColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
		t.ID, t.Admin, t.Contractor, list(t.Scopes), t.Hash[:], msec(t.ExpiresAt), list(t.CIDRs),
		t.MaxUses, t.Uses, t.Note, msec(t.CreatedAt), t.CreatedBy, msec(t.LastUsedAt),
		msec(t.RevokedAt), t.RevokedBy, t.Parent, t.RevokedReason, t.DerivedFrom, t.CnfJKT, t.CnfX5T)
	if isUnique(err) {
		return fmt.Errorf("postgres: token %q: %w", t.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("postgres: create token %q: %w", t.ID, err)
	}
	return nil
}

// Token returns the token with that id or store.ErrNotFound.
func (s *Store) Token(ctx context.Context, id string) (store.Token, error) {
	ts, err := queryTokens(ctx, s.pool, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id)
	if err != nil {
		return store.Token{}, scrub(fmt.Errorf("postgres: token %q: %w", id, err), s.pw)
	}
	if len(ts) == 0 {
		return store.Token{}, fmt.Errorf("postgres: token %q: %w", id, store.ErrNotFound)
	}
	return ts[0], nil
}

// Tokens returns the tokens selected by f ordered by creation time, id.
func (s *Store) Tokens(ctx context.Context, f store.TokenFilter) ([]store.Token, error) {
	var w where
	if f.Contractor != "" {
		w.add(`contractor = $%d`, f.Contractor)
	}
	if !f.ActiveAt.IsZero() {
		w.add(`revoked_at IS NULL AND expires_at > $%d`, bound(f.ActiveAt))
	}
	if f.Admin != nil {
		w.add(`admin = $%d`, *f.Admin)
	}
	// NULLS FIRST: SQLite sorts a NULL (zero) creation time first.
	ts, err := queryTokens(ctx, s.pool, `SELECT `+tokenColumns+` FROM tokens`+w.sql()+
		` ORDER BY created_at NULLS FIRST, id`, w.args...)
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: tokens: %w", err), s.pw)
	}
	return ts, nil
}

// queryTokens runs a query selecting tokenColumns and returns the tokens.
func queryTokens(ctx context.Context, q querier, sql string, args ...any) ([]store.Token, error) {
	rows, err := q.Query(ctx, sql, args...)
	return collect(rows, err, scanToken)
}

func scanToken(rows pgx.Rows) (store.Token, error) {
	var t store.Token
	var hash []byte
	var expires, created, used, revoked pgtype.Timestamptz
	err := rows.Scan(&t.ID, &t.Admin, &t.Contractor, &t.Scopes, &hash, &expires, &t.CIDRs, &t.MaxUses,
		&t.Uses, &t.Note, &created, &t.CreatedBy, &used, &revoked, &t.RevokedBy, &t.Parent, &t.RevokedReason,
		&t.DerivedFrom, &t.CnfJKT, &t.CnfX5T)
	if err != nil {
		return store.Token{}, err
	}
	if len(hash) != len(t.Hash) {
		return store.Token{}, fmt.Errorf("token %q: stored hash has %d bytes", t.ID, len(hash))
	}
	copy(t.Hash[:], hash)
	t.ExpiresAt, t.CreatedAt = timeOf(expires), timeOf(created)
	t.LastUsedAt, t.RevokedAt = timeOf(used), timeOf(revoked)
	if len(t.Scopes) == 0 {
		t.Scopes = nil
	}
	if len(t.CIDRs) == 0 {
		t.CIDRs = nil
	}
	return t, nil
}

// RevokeToken revokes a token. store.ErrNotFound, or store.ErrRevoked if it
// was already revoked, in which case the first revocation is kept.
func (s *Store) RevokeToken(ctx context.Context, id, by, reason string, at time.Time) error {
	if err := nonZero(at); err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
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
		if err := invalidateTokens(ctx, tx, id); err != nil {
			return fmt.Errorf("postgres: revoke token: %w", err)
		}
		return nil
	})
}

// tokenState is what a write needs to know of an existing token.
type tokenState struct {
	contractor string
	revoked    bool
	disabled   bool // its contractor is disabled
}

// lockToken reads, inside a write transaction, the state of the token with
// that id, locking its row until the transaction ends; store.ErrNotFound
// if there is none.
func lockToken(ctx context.Context, tx pgx.Tx, id string) (tokenState, error) {
	var st tokenState
	var revoked pgtype.Timestamptz
	err := tx.QueryRow(ctx, `SELECT t.contractor, t.revoked_at, coalesce(c.disabled, false)
		FROM tokens t LEFT JOIN contractors c ON c.name = t.contractor WHERE t.id = $1 FOR UPDATE OF t`, id).
		Scan(&st.contractor, &revoked, &st.disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("token %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("token %q: %w", id, err)
	}
	st.revoked = revoked.Valid
	return st, nil
}

// RotateToken, in one transaction, stores next and moves the old token's
// expiry to oldExpiresAt if that is earlier than its current expiry.
// store.ErrNotFound if the old token does not exist, store.ErrDisabled if
// its contractor is disabled, store.ErrRevoked if it is revoked (in that
// order). next.Parent must be oldID, and next is checked as by
// CreateToken.
func (s *Store) RotateToken(ctx context.Context, oldID string, oldExpiresAt time.Time, next store.Token) error {
	if next.Parent != oldID {
		return fmt.Errorf("postgres: rotate token %q: next token's parent is %q", oldID, next.Parent)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		old, err := lockToken(ctx, tx, oldID)
		if err != nil {
			return fmt.Errorf("postgres: rotate token: %w", err)
		}
		if old.disabled {
			return fmt.Errorf("postgres: rotate token %q: contractor %q: %w", oldID, old.contractor, store.ErrDisabled)
		}
		if old.revoked {
			return fmt.Errorf("postgres: rotate token %q: %w", oldID, store.ErrRevoked)
		}
		if err := insertToken(ctx, tx, next); err != nil {
			return err
		}
		// NULL is the zero time, earlier than any other.
		_, err = tx.Exec(ctx, `UPDATE tokens SET expires_at = $1
			WHERE id = $2 AND expires_at IS NOT NULL AND ($1::timestamptz IS NULL OR $1 < expires_at)`,
			msec(oldExpiresAt), oldID)
		if err != nil {
			return fmt.Errorf("postgres: rotate token %q: %w", oldID, err)
		}
		if err := invalidateTokens(ctx, tx, oldID); err != nil {
			return fmt.Errorf("postgres: rotate token: %w", err)
		}
		return nil
	})
}
