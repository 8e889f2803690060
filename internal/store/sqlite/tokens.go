package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"latchkey/internal/store"
)

const tokenColumns = `id, admin, contractor, scopes, hash, expires_at, cidrs, max_uses, uses, note,
	created_at, created_by, last_used_at, revoked_at, revoked_by, parent, revoked_reason, derived_from, cnf_jkt, cnf_x5t`

// CreateToken stores t. store.ErrConflict if the id exists; for a
// contractor token store.ErrNotFound if the contractor does not exist and
// store.ErrDisabled if it is disabled. An admin token must not name a
// contractor.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		return insertToken(ctx, tx, t)
	})
}

// insertToken checks t's contractor and inserts t, inside tx.
func insertToken(ctx context.Context, tx *sql.Tx, t store.Token) error {
	if t.Admin && t.Contractor != "" {
		return fmt.Errorf("sqlite: token %q: admin token names contractor %q", t.ID, t.Contractor)
	}
	if !t.Admin {
		if err := contractorUsable(ctx, tx, t.Contractor); err != nil {
			return fmt.Errorf("sqlite: token %q: %w", t.ID, err)
		}
	}
	scopes, err := encodeList(t.Scopes)
	if err != nil {
		return fmt.Errorf("sqlite: token %q: %w", t.ID, err)
	}
	cidrs, err := encodeList(t.CIDRs)
	if err != nil {
		return fmt.Errorf("sqlite: token %q: %w", t.ID, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO tokens (`+tokenColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Admin, t.Contractor, scopes, t.Hash[:], msec(t.ExpiresAt), cidrs,
		t.MaxUses, t.Uses, t.Note, msec(t.CreatedAt), t.CreatedBy, msec(t.LastUsedAt),
		msec(t.RevokedAt), t.RevokedBy, t.Parent, t.RevokedReason, t.DerivedFrom, t.CnfJKT, t.CnfX5T)
	if isUnique(err) {
		return fmt.Errorf("sqlite: token %q: %w", t.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create token %q: %w", t.ID, err)
	}
	return nil
}

// Token returns the token with that id or store.ErrNotFound.
func (s *Store) Token(ctx context.Context, id string) (store.Token, error) {
	ts, err := queryTokens(ctx, s.r, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id)
	if err != nil {
		return store.Token{}, fmt.Errorf("sqlite: token %q: %w", id, err)
	}
	if len(ts) == 0 {
		return store.Token{}, fmt.Errorf("sqlite: token %q: %w", id, store.ErrNotFound)
	}
	return ts[0], nil
}

// Tokens returns the tokens selected by f ordered by creation time, id.
func (s *Store) Tokens(ctx context.Context, f store.TokenFilter) ([]store.Token, error) {
	var where []string
	var args []any
	if f.Contractor != "" {
		where = append(where, `contractor = ?`)
		args = append(args, f.Contractor)
	}
	if !f.ActiveAt.IsZero() {
		where = append(where, `revoked_at IS NULL AND expires_at > ?`)
		args = append(args, bound(f.ActiveAt))
	}
	if f.Admin != nil {
		where = append(where, `admin = ?`)
		args = append(args, *f.Admin)
	}
	q := `SELECT ` + tokenColumns + ` FROM tokens`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	ts, err := queryTokens(ctx, s.r, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tokens: %w", err)
	}
	return ts, nil
}

// queryTokens runs a query selecting tokenColumns and returns the tokens.
func queryTokens(ctx context.Context, db *sql.DB, q string, args ...any) ([]store.Token, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var sc tokenScanner
	return scanAll(rows, sc.scan)
}

// tokenScanner reads rows of tokenColumns. It keeps its buffers from row
// to row, and strings that repeat across tokens are interned.
type tokenScanner struct {
	in                                                      interner
	contractor, scopes, cidrs, createdBy, revokedBy, reason sql.RawBytes
}

func (sc *tokenScanner) scan(rows *sql.Rows) (store.Token, error) {
	if sc.in == nil {
		sc.in = interner{}
	}
	var t store.Token
	var hash sql.RawBytes
	var expires, created, used, revoked sql.NullInt64
	err := rows.Scan(&t.ID, &t.Admin, &sc.contractor, &sc.scopes, &hash, &expires, &sc.cidrs, &t.MaxUses,
		&t.Uses, &t.Note, &created, &sc.createdBy, &used, &revoked, &sc.revokedBy, &t.Parent, &sc.reason, &t.DerivedFrom, &t.CnfJKT, &t.CnfX5T)
	if err != nil {
		return store.Token{}, err
	}
	if len(hash) != len(t.Hash) {
		return store.Token{}, fmt.Errorf("token %q: stored hash has %d bytes", t.ID, len(hash))
	}
	copy(t.Hash[:], hash)
	t.Contractor, t.CreatedBy, t.RevokedBy = sc.in.str(sc.contractor), sc.in.str(sc.createdBy), sc.in.str(sc.revokedBy)
	t.RevokedReason = sc.in.str(sc.reason)
	t.ExpiresAt, t.CreatedAt = timeOf(expires), timeOf(created)
	t.LastUsedAt, t.RevokedAt = timeOf(used), timeOf(revoked)
	if t.Scopes, err = appendList(nil, sc.scopes, sc.in); err != nil {
		return store.Token{}, fmt.Errorf("token %q: %w", t.ID, err)
	}
	if t.CIDRs, err = appendList(nil, sc.cidrs, sc.in); err != nil {
		return store.Token{}, fmt.Errorf("token %q: %w", t.ID, err)
	}
	return t, nil
}

// RevokeToken revokes a token. store.ErrNotFound, or store.ErrRevoked if it
// was already revoked, in which case the first revocation is kept.
func (s *Store) RevokeToken(ctx context.Context, id, by, reason string, at time.Time) error {
	if err := nonZero(at); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		old, err := lockToken(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("sqlite: revoke token: %w", err)
		}
		if old.revoked {
			return fmt.Errorf("sqlite: revoke token %q: %w", id, store.ErrRevoked)
		}
		_, err = tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ?, revoked_by = ?, revoked_reason = ? WHERE id = ?`,
			msec(at), by, reason, id)
		if err != nil {
			return fmt.Errorf("sqlite: revoke token %q: %w", id, err)
		}
		if err := invalidateTokens(ctx, tx, id); err != nil {
			return fmt.Errorf("sqlite: revoke token: %w", err)
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
// that id; store.ErrNotFound if there is none.
func lockToken(ctx context.Context, tx *sql.Tx, id string) (tokenState, error) {
	var st tokenState
	var revoked sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT t.contractor, t.revoked_at, coalesce(c.disabled, 0)
		FROM tokens t LEFT JOIN contractors c ON c.name = t.contractor WHERE t.id = ?`, id).
		Scan(&st.contractor, &revoked, &st.disabled)
	if errors.Is(err, sql.ErrNoRows) {
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
// order: a disabled contractor's tokens are all revoked, and ErrDisabled
// says why). next.Parent must be oldID, and next is checked as by
// CreateToken.
func (s *Store) RotateToken(ctx context.Context, oldID string, oldExpiresAt time.Time, next store.Token) error {
	if next.Parent != oldID {
		return fmt.Errorf("sqlite: rotate token %q: next token's parent is %q", oldID, next.Parent)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		old, err := lockToken(ctx, tx, oldID)
		if err != nil {
			return fmt.Errorf("sqlite: rotate token: %w", err)
		}
		if old.disabled {
			return fmt.Errorf("sqlite: rotate token %q: contractor %q: %w", oldID, old.contractor, store.ErrDisabled)
		}
		if old.revoked {
			return fmt.Errorf("sqlite: rotate token %q: %w", oldID, store.ErrRevoked)
		}
		if err := insertToken(ctx, tx, next); err != nil {
			return err
		}
		// NULL is the zero time, earlier than any other.
		_, err = tx.ExecContext(ctx, `UPDATE tokens SET expires_at = ?1
			WHERE id = ?2 AND expires_at IS NOT NULL AND (?1 IS NULL OR ?1 < expires_at)`,
			msec(oldExpiresAt), oldID)
		if err != nil {
			return fmt.Errorf("sqlite: rotate token %q: %w", oldID, err)
		}
		if err := invalidateTokens(ctx, tx, oldID); err != nil {
			return fmt.Errorf("sqlite: rotate token: %w", err)
		}
		return nil
	})
}
