package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"latchkey/internal/store"
)

// migrationFS holds the schema migrations, named NNNN_what.sql. NNNN is
// the schema version the file brings the database to; versions start at 1
// and have no gaps. A released migration is never edited: a change to the
// schema is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// errNewerSchema: the database was written by a newer binary.
var errNewerSchema = errors.New("database schema is newer than this binary")

// migrations returns the embedded migrations ordered by version.
func migrations() ([]store.Migration, error) {
	ms, err := store.Migrations(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return ms, nil
}

// migrate brings the schema of db up to the latest embedded version in
// one transaction, recording each applied version in schema_migrations.
// It fails with errNewerSchema if the database is already past the latest
// version this binary knows.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	var current int
	err = tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if latest := len(ms); current > latest {
		return fmt.Errorf("sqlite: %w: database is at version %d, this binary knows up to %d",
			errNewerSchema, current, latest)
	}
	for _, m := range ms[current:] {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, m.Version); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}
