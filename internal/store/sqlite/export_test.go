package sqlite

import (
	"context"
	"database/sql"
)

// ErrNewerSchema is errNewerSchema, for the tests.
var ErrNewerSchema = errNewerSchema

// DB returns the store's write pool, for tests that reach under the API.
func (s *Store) DB() *sql.DB { return s.w }

// AppendEntry and ParseEntry are the audit queue journal's entry codec.
var (
	AppendEntry = appendEntry
	ParseEntry  = parseEntry
)

// PathOf returns the path of the store's database file.
func PathOf(s *Store) string { return s.path }

// IndexAudit brings the search index up to date now.
func (s *Store) IndexAudit(ctx context.Context) error { return s.indexAudit(ctx) }

// MigrateTo applies the embedded migrations 1 .. version to db, a new
// database: a store as an older binary left it.
func MigrateTo(ctx context.Context, db *sql.DB, version int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL) STRICT`); err != nil {
		return err
	}
	for _, m := range ms[:version] {
		if _, err := db.ExecContext(ctx, m.SQL); err != nil {
			return err
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, m.Version); err != nil {
			return err
		}
	}
	return nil
}

// DecodeLeafRun and EncodeLeafRun are the audit leaf runs' codec.
var (
	DecodeLeafRun = decodeLeafRun
	EncodeLeafRun = encodeLeafRun
)

// ReadEntries is the audit helper's journal reader.
var ReadEntries = readEntries
