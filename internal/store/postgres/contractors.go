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

const contractorColumns = `name, email, company, sponsor, until_at, disabled, created_at, created_by`

// CreateContractor stores c; store.ErrConflict if the name is taken.
func (s *Store) CreateContractor(ctx context.Context, c store.Contractor) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO contractors (`+contractorColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			c.Name, c.Email, c.Company, c.Sponsor, msec(c.Until), c.Disabled, msec(c.CreatedAt), c.CreatedBy)
		if isUnique(err) {
			return fmt.Errorf("postgres: contractor %q: %w", c.Name, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("postgres: create contractor %q: %w", c.Name, err)
		}
		return nil
	})
}

// Contractor returns the named contractor or store.ErrNotFound.
func (s *Store) Contractor(ctx context.Context, name string) (store.Contractor, error) {
	c, err := scanContractor(s.pool.QueryRow(ctx, `SELECT `+contractorColumns+` FROM contractors WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Contractor{}, fmt.Errorf("postgres: contractor %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Contractor{}, scrub(fmt.Errorf("postgres: contractor %q: %w", name, err), s.pw)
	}
	return c, nil
}

// Contractors returns all contractors ordered by name.
func (s *Store) Contractors(ctx context.Context) ([]store.Contractor, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+contractorColumns+` FROM contractors ORDER BY name`)
	cs, err := collect(rows, err, func(r pgx.Rows) (store.Contractor, error) { return scanContractor(r) })
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: contractors: %w", err), s.pw)
	}
	return cs, nil
}

func scanContractor(row pgx.Row) (store.Contractor, error) {
	var c store.Contractor
	var until, created pgtype.Timestamptz
	err := row.Scan(&c.Name, &c.Email, &c.Company, &c.Sponsor, &until, &c.Disabled, &created, &c.CreatedBy)
	c.Until, c.CreatedAt = timeOf(until), timeOf(created)
	return c, err
}

// collect reads every row of rows (the result of a query that failed with
// err if err is not nil) with scan, and closes rows.
func collect[T any](rows pgx.Rows, err error, scan func(pgx.Rows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// contractorUsable checks, inside tx, that the named contractor exists
// (else store.ErrNotFound) and is not disabled (else store.ErrDisabled).
// It locks the contractor's row (FOR SHARE) until tx ends, so that an
// offboarding cannot commit in between.
func contractorUsable(ctx context.Context, tx pgx.Tx, name string) error {
	var disabled bool
	err := tx.QueryRow(ctx, `SELECT disabled FROM contractors WHERE name = $1 FOR SHARE`, name).Scan(&disabled)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: contractor %q: %w", name, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: contractor %q: %w", name, err)
	case disabled:
		return fmt.Errorf("postgres: contractor %q: %w", name, store.ErrDisabled)
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		n, err := affected(tx.Exec(ctx, `UPDATE contractors SET disabled = true WHERE name = $1`, name))
		if err != nil {
			return fmt.Errorf("postgres: offboard %q: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("postgres: offboard %q: %w", name, store.ErrNotFound)
		}
		tokens, err := revokeTokensOf(ctx, tx, name, by, store.RevokeOffboarded, at)
		if err != nil {
			return fmt.Errorf("postgres: offboard %q: %w", name, err)
		}
		grants, err := revokeGrantsOf(ctx, tx, name, by, at)
		if err != nil {
			return fmt.Errorf("postgres: offboard %q: %w", name, err)
		}
		if err := invalidateContractor(ctx, tx, name); err != nil {
			return fmt.Errorf("postgres: offboard: %w", err)
		}
		res = store.OffboardResult{TokensRevoked: tokens, GrantsRevoked: grants}
		return nil
	})
	if err != nil {
		return store.OffboardResult{}, err
	}
	return res, nil
}

// revokeTokensOf revokes every unrevoked token of contractor for reason
// and returns how many it revoked.
func revokeTokensOf(ctx context.Context, tx pgx.Tx, contractor, by, reason string, at time.Time) (int, error) {
	n, err := affected(tx.Exec(ctx, `UPDATE tokens SET revoked_at = $1, revoked_by = $2, revoked_reason = $3
		WHERE contractor = $4 AND revoked_at IS NULL`, msec(at), by, reason, contractor))
	return int(n), err
}

// revokeGrantsOf revokes every unrevoked grant of contractor and returns
// how many it revoked.
func revokeGrantsOf(ctx context.Context, tx pgx.Tx, contractor, by string, at time.Time) (int, error) {
	n, err := affected(tx.Exec(ctx, `UPDATE grants SET revoked_at = $1, revoked_by = $2
		WHERE contractor = $3 AND revoked_at IS NULL`, msec(at), by, contractor))
	return int(n), err
}
