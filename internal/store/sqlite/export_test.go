package sqlite

import "database/sql"

// ErrNewerSchema is errNewerSchema, for the tests.
var ErrNewerSchema = errNewerSchema

// DB returns the store's write pool, for tests that reach under the API.
func (s *Store) DB() *sql.DB { return s.w }
