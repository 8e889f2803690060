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
