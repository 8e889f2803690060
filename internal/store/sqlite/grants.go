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

const grantColumns = `id, contractor, scopes, expires_at, created_at, created_by, revoked_at, revoked_by`

// CreateGrant stores g and returns it as stored, with its ID set.
// store.ErrNotFound if the contractor does not exist, store.ErrDisabled if
// it is disabled.
func (s *Store) CreateGrant(ctx context.Context, g store.Grant) (store.Grant, error) {
	scopes, err := encodeList(g.Scopes)
	if err != nil {
		return store.Grant{}, fmt.Errorf("sqlite: create grant: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := contractorUsable(ctx, tx, g.Contractor); err != nil {
			return fmt.Errorf("sqlite: create grant: %w", err)
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO grants
			(contractor, scopes, expires_at, created_at, created_by, revoked_at, revoked_by)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			g.Contractor, scopes, msec(g.ExpiresAt), msec(g.CreatedAt), g.CreatedBy, msec(g.RevokedAt), g.RevokedBy)
		if err != nil {
			return fmt.Errorf("sqlite: create grant: %w", err)
		}
		g.ID, err = r.LastInsertId()
		return err
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
	row := s.r.QueryRowContext(ctx, `SELECT `+grantColumns+` FROM grants WHERE id = ?`, id)
	g, err := scanGrant(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Grant{}, fmt.Errorf("sqlite: grant %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Grant{}, fmt.Errorf("sqlite: grant %d: %w", id, err)
	}
	return g, nil
}

// Grants returns the grants selected by f ordered by id.
func (s *Store) Grants(ctx context.Context, f store.GrantFilter) ([]store.Grant, error) {
	var where []string
	var args []any
	if f.Contractor != "" {
		where = append(where, `contractor = ?`)
		args = append(args, f.Contractor)
	}
	if !f.LiveAt.IsZero() {
		where = append(where, `revoked_at IS NULL AND expires_at > ?`)
		args = append(args, bound(f.LiveAt))
	}
	q := `SELECT ` + grantColumns + ` FROM grants`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	db := s.r
	if f.Contractor == "" {
		db = s.scan // every contractor's grants: a report's scan
	}
	rows, err := db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: grants: %w", err)
	}
	defer rows.Close()
	var gs []store.Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: grants: %w", err)
		}
		gs = append(gs, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: grants: %w", err)
	}
	return gs, nil
}

func scanGrant(row scanner) (store.Grant, error) {
	var g store.Grant
	var scopes []byte
	var expires, created, revoked sql.NullInt64
	err := row.Scan(&g.ID, &g.Contractor, &scopes, &expires, &created, &g.CreatedBy, &revoked, &g.RevokedBy)
	if err != nil {
		return store.Grant{}, err
	}
	g.ExpiresAt, g.CreatedAt, g.RevokedAt = timeOf(expires), timeOf(created), timeOf(revoked)
	g.Scopes, err = decodeList(scopes)
	return g, err
}

// RevokeGrant revokes a grant. store.ErrNotFound, or store.ErrRevoked if it
// was already revoked, in which case the first revocation is kept.
func (s *Store) RevokeGrant(ctx context.Context, id int64, by string, at time.Time) error {
	if err := nonZero(at); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var revoked sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM grants WHERE id = ?`, id).Scan(&revoked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite: revoke grant %d: %w", id, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("sqlite: revoke grant %d: %w", id, err)
		case revoked.Valid:
			return fmt.Errorf("sqlite: revoke grant %d: %w", id, store.ErrRevoked)
		}
		_, err = tx.ExecContext(ctx, `UPDATE grants SET revoked_at = ?, revoked_by = ? WHERE id = ?`,
			msec(at), by, id)
		if err != nil {
			return fmt.Errorf("sqlite: revoke grant %d: %w", id, err)
		}
		return nil
	})
}
