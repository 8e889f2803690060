package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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

// migrateLockKey is the key of the session advisory lock held while
// migrating, so that of several processes starting at once on an empty
// database exactly one applies the migrations and the others then find
// them applied. (The key is "lk-migr" in ASCII.)
const migrateLockKey int64 = 0x6c6b2d6d69677200

// migrations returns the embedded migrations ordered by version.
func migrations() ([]store.Migration, error) {
	ms, err := store.Migrations(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return ms, nil
}

// migrate brings the schema up to the latest embedded version. It holds
// the session advisory lock migrateLockKey on one dedicated connection
// throughout, and applies each migration in its own transaction with its
// row in schema_migrations. It fails with errNewerSchema if the database
// is already past the latest version this binary knows.
func migrate(ctx context.Context, pool *pgxpool.Pool) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	defer func() {
		_, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockKey)
		if uerr != nil {
			// The lock would stay with the session: drop the connection.
			conn.Conn().Close(context.WithoutCancel(ctx))
			err = errors.Join(err, fmt.Errorf("postgres: migrate: unlock: %w", uerr))
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if latest := len(ms); current > latest {
		return fmt.Errorf("postgres: %w: database is at version %d, this binary knows up to %d",
			errNewerSchema, current, latest)
	}
	for _, m := range ms[current:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.Version)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
	}
	return nil
}
