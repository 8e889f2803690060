package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"latchkey/internal/store"
)

const serviceColumns = `name, upstream, sealed_credential, private_headers, created_at, created_by, kind`

// CreateService stores sv; store.ErrConflict if the name is taken.
func (s *Store) CreateService(ctx context.Context, sv store.Service) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO services (`+serviceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			sv.Name, sv.Upstream, nullBytes(sv.SealedCredential), list(sv.PrivateHeaders), msec(sv.CreatedAt), sv.CreatedBy, sv.Kind)
		if isUnique(err) {
			return fmt.Errorf("postgres: service %q: %w", sv.Name, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("postgres: create service %q: %w", sv.Name, err)
		}
		return nil
	})
}

// Service returns the named service or store.ErrNotFound.
func (s *Store) Service(ctx context.Context, name string) (store.Service, error) {
	sv, err := scanService(s.pool.QueryRow(ctx, `SELECT `+serviceColumns+` FROM services WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Service{}, fmt.Errorf("postgres: service %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Service{}, scrub(fmt.Errorf("postgres: service %q: %w", name, err), s.pw)
	}
	return sv, nil
}

// Services returns all services ordered by name.
func (s *Store) Services(ctx context.Context) ([]store.Service, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+serviceColumns+` FROM services ORDER BY name`)
	svs, err := collect(rows, err, func(r pgx.Rows) (store.Service, error) { return scanService(r) })
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: services: %w", err), s.pw)
	}
	return svs, nil
}

func scanService(row pgx.Row) (store.Service, error) {
	var sv store.Service
	var created pgtype.Timestamptz
	if err := row.Scan(&sv.Name, &sv.Upstream, &sv.SealedCredential, &sv.PrivateHeaders, &created, &sv.CreatedBy, &sv.Kind); err != nil {
		return sv, err
	}
	sv.CreatedAt = timeOf(created)
	if len(sv.SealedCredential) == 0 {
		sv.SealedCredential = nil
	}
	if len(sv.PrivateHeaders) == 0 {
		sv.PrivateHeaders = nil
	}
	return sv, nil
}

// nullBytes is the stored form of an opaque byte string: NULL when empty.
func nullBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
