package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"latchkey/internal/store"
)

const grantColumns = `id, contractor, scopes, expires_at, created_at, created_by, revoked_at, revoked_by`

// CreateGrant stores g and returns it as stored, with its ID set.
// store.ErrNotFound if the contractor does not exist, store.ErrDisabled if
// it is disabled.
func (s *Store) CreateGrant(ctx context.Context, g store.Grant) (store.Grant, error) {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := contractorUsable(ctx, tx, g.Contractor); err != nil {
			return fmt.Errorf("postgres: create grant: %w", err)
		}
		err := tx.QueryRow(ctx, `INSERT INTO grants
			(contractor, scopes, expires_at, created_at, created_by, revoked_at, revoked_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			g.Contractor, list(g.Scopes), msec(g.ExpiresAt), msec(g.CreatedAt), g.CreatedBy, msec(g.RevokedAt), g.RevokedBy).Scan(&g.ID)
		if err != nil {
			return fmt.Errorf("postgres: create grant: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.Grant{}, err
	}
	g.ExpiresAt, g.CreatedAt, g.RevokedAt = norm(g.ExpiresAt), norm(g.CreatedAt), norm(g.RevokedAt)
	if len(g.Scopes) == 0 {
		g.Scopes = nil
	}
	return g, nil
}

// Grant returns the grant with that id or store.ErrNotFound.
func (s *Store) Grant(ctx context.Context, id int64) (store.Grant, error) {
	g, err := scanGrant(s.pool.QueryRow(ctx, `SELECT `+grantColumns+` FROM grants WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Grant{}, fmt.Errorf("postgres: grant %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Grant{}, scrub(fmt.Errorf("postgres: grant %d: %w", id, err), s.pw)
	}
	return g, nil
}

// Grants returns the grants selected by f ordered by id.
func (s *Store) Grants(ctx context.Context, f store.GrantFilter) ([]store.Grant, error) {
	var w where
	if f.Contractor != "" {
		w.add(`contractor = $%d`, f.Contractor)
	}
	if !f.LiveAt.IsZero() {
		w.add(`revoked_at IS NULL AND expires_at > $%d`, bound(f.LiveAt))
	}
	rows, err := s.pool.Query(ctx, `SELECT `+grantColumns+` FROM grants`+w.sql()+` ORDER BY id`, w.args...)
	gs, err := collect(rows, err, func(r pgx.Rows) (store.Grant, error) { return scanGrant(r) })
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: grants: %w", err), s.pw)
	}
	return gs, nil
}

// where builds a WHERE clause of conditions joined by AND, numbering
// their parameters.
type where struct {
	conds []string
	args  []any
}

// add adds cond, whose one parameter is written $%d, with its value.
func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, fmt.Sprintf(cond, len(w.args)))
}

// sql returns " WHERE ..." or "".
func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(w.conds, ` AND `)
}

// next returns the placeholder of the next parameter, to append arg with.
func (w *where) next(arg any) string {
	w.args = append(w.args, arg)
	return fmt.Sprintf("$%d", len(w.args))
}

func scanGrant(row pgx.Row) (store.Grant, error) {
	var g store.Grant
	var expires, created, revoked pgtype.Timestamptz
	err := row.Scan(&g.ID, &g.Contractor, &g.Scopes, &expires, &created, &g.CreatedBy, &revoked, &g.RevokedBy)
	if err != nil {
		return store.Grant{}, err
	}
	g.ExpiresAt, g.CreatedAt, g.RevokedAt = timeOf(expires), timeOf(created), timeOf(revoked)
	if len(g.Scopes) == 0 {
		g.Scopes = nil
	}
	return g, nil
}

// RevokeGrant revokes a grant. store.ErrNotFound, or store.ErrRevoked if it
// was already revoked, in which case the first revocation is kept.
func (s *Store) RevokeGrant(ctx context.Context, id int64, by string, at time.Time) error {
	if err := nonZero(at); err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var revoked pgtype.Timestamptz
		err := tx.QueryRow(ctx, `SELECT revoked_at FROM grants WHERE id = $1 FOR UPDATE`, id).Scan(&revoked)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("postgres: revoke grant %d: %w", id, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("postgres: revoke grant %d: %w", id, err)
		case revoked.Valid:
			return fmt.Errorf("postgres: revoke grant %d: %w", id, store.ErrRevoked)
		}
		_, err = tx.Exec(ctx, `UPDATE grants SET revoked_at = $1, revoked_by = $2 WHERE id = $3`, msec(at), by, id)
		if err != nil {
			return fmt.Errorf("postgres: revoke grant %d: %w", id, err)
		}
		return nil
	})
}
