package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"latchkey/internal/store"
)

const serviceColumns = `name, upstream, sealed_credential, private_headers, created_at, created_by, kind`

// CreateService stores sv; store.ErrConflict if the name is taken.
func (s *Store) CreateService(ctx context.Context, sv store.Service) error {
	private, err := encodeList(sv.PrivateHeaders)
	if err != nil {
		return fmt.Errorf("sqlite: create service %q: %w", sv.Name, err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO services (`+serviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			sv.Name, sv.Upstream, nullBytes(sv.SealedCredential), private, msec(sv.CreatedAt), sv.CreatedBy, sv.Kind)
		if isUnique(err) {
			return fmt.Errorf("sqlite: service %q: %w", sv.Name, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("sqlite: create service %q: %w", sv.Name, err)
		}
		return nil
	})
}

// Service returns the named service or store.ErrNotFound.
func (s *Store) Service(ctx context.Context, name string) (store.Service, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+serviceColumns+` FROM services WHERE name = ?`, name)
	sv, err := scanService(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Service{}, fmt.Errorf("sqlite: service %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Service{}, fmt.Errorf("sqlite: service %q: %w", name, err)
	}
	return sv, nil
}

// Services returns all services ordered by name.
func (s *Store) Services(ctx context.Context) ([]store.Service, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+serviceColumns+` FROM services ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: services: %w", err)
	}
	defer rows.Close()
	var svs []store.Service
	for rows.Next() {
		sv, err := scanService(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: services: %w", err)
		}
		svs = append(svs, sv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: services: %w", err)
	}
	return svs, nil
}

func scanService(row scanner) (store.Service, error) {
	var sv store.Service
	var created sql.NullInt64
	var private []byte
	if err := row.Scan(&sv.Name, &sv.Upstream, &sv.SealedCredential, &private, &created, &sv.CreatedBy, &sv.Kind); err != nil {
		return sv, err
	}
	sv.CreatedAt = timeOf(created)
	var err error
	if sv.PrivateHeaders, err = decodeList(private); err != nil {
		return sv, fmt.Errorf("private headers: %w", err)
	}
	if len(sv.SealedCredential) == 0 {
		sv.SealedCredential = nil
	}
	return sv, err
}

// nullBytes is the stored form of an opaque byte string: NULL when empty.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
