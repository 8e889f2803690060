package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"latchkey/internal/store"
)

const contractorColumns = `name, email, company, sponsor, until_at, disabled, created_at, created_by`

// CreateContractor stores c; store.ErrConflict if the name is taken.
func (s *Store) CreateContractor(ctx context.Context, c store.Contractor) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO contractors (`+contractorColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			c.Name, c.Email, c.Company, c.Sponsor, msec(c.Until), c.Disabled, msec(c.CreatedAt), c.CreatedBy)
		if isUnique(err) {
			return fmt.Errorf("sqlite: contractor %q: %w", c.Name, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("sqlite: create contractor %q: %w", c.Name, err)
		}
		return nil
	})
}

// Contractor returns the named contractor or store.ErrNotFound.
func (s *Store) Contractor(ctx context.Context, name string) (store.Contractor, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+contractorColumns+` FROM contractors WHERE name = ?`, name)
	c, err := scanContractor(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Contractor{}, fmt.Errorf("sqlite: contractor %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Contractor{}, fmt.Errorf("sqlite: contractor %q: %w", name, err)
	}
	return c, nil
}

// Contractors returns all contractors ordered by name.
func (s *Store) Contractors(ctx context.Context) ([]store.Contractor, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+contractorColumns+` FROM contractors ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: contractors: %w", err)
	}
	defer rows.Close()
	var cs []store.Contractor
	for rows.Next() {
		c, err := scanContractor(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: contractors: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: contractors: %w", err)
	}
	return cs, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

func scanContractor(row scanner) (store.Contractor, error) {
	var c store.Contractor
	var until, created sql.NullInt64
	err := row.Scan(&c.Name, &c.Email, &c.Company, &c.Sponsor, &until, &c.Disabled, &created, &c.CreatedBy)
	c.Until, c.CreatedAt = timeOf(until), timeOf(created)
	return c, err
}

// contractorUsable checks, inside tx, that the named contractor exists
// (else store.ErrNotFound) and is not disabled (else store.ErrDisabled).
func contractorUsable(ctx context.Context, tx *sql.Tx, name string) error {
	var disabled bool
	err := tx.QueryRowContext(ctx, `SELECT disabled FROM contractors WHERE name = ?`, name).Scan(&disabled)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: contractor %q: %w", name, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: contractor %q: %w", name, err)
	case disabled:
		return fmt.Errorf("sqlite: contractor %q: %w", name, store.ErrDisabled)
	}
	return nil
}

// Offboard, in one transaction, revokes every unrevoked token and grant of
// the contractor and disables it. store.ErrNotFound if there is no such
// contractor; offboarding a disabled contractor is not an error.
func (s *Store) Offboard(ctx context.Context, name, by string, at time.Time) (store.OffboardResult, error) {
	if err := nonZero(at); err != nil {
		return store.OffboardResult{}, err
	}
	var res store.OffboardResult
	err := s.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE contractors SET disabled = 1 WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("sqlite: offboard %q: %w", name, err)
		}
		if n, err := r.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: offboard %q: %w", name, err)
		} else if n == 0 {
			return fmt.Errorf("sqlite: offboard %q: %w", name, store.ErrNotFound)
		}
		tokens, err := revokeAll(ctx, tx, "tokens", name, by, at)
		if err != nil {
			return fmt.Errorf("sqlite: offboard %q: %w", name, err)
		}
		grants, err := revokeAll(ctx, tx, "grants", name, by, at)
		if err != nil {
			return fmt.Errorf("sqlite: offboard %q: %w", name, err)
		}
		if err := invalidateContractor(ctx, tx, name); err != nil {
			return fmt.Errorf("sqlite: offboard: %w", err)
		}
		res = store.OffboardResult{TokensRevoked: tokens, GrantsRevoked: grants}
		return nil
	})
	if err != nil {
		return store.OffboardResult{}, err
	}
	return res, nil
}

// revokeAll revokes every unrevoked row of table (tokens or grants) that
// belongs to contractor and returns how many it revoked.
func revokeAll(ctx context.Context, tx *sql.Tx, table, contractor, by string, at time.Time) (int, error) {
	set := `revoked_at = ?, revoked_by = ?`
	if table == "tokens" {
		set += `, revoked_reason = '` + store.RevokeOffboarded + `'`
	}
	r, err := tx.ExecContext(ctx, `UPDATE `+table+` SET `+set+`
		WHERE contractor = ? AND revoked_at IS NULL`, msec(at), by, contractor)
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	return int(n), err
}
