package postgres

import "github.com/jackc/pgx/v5/pgxpool"

// ErrNewerSchema is errNewerSchema, for the tests.
var ErrNewerSchema = errNewerSchema

// Pool returns the store's pool, for tests that reach under the API.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Migrations returns the number of embedded migrations.
func Migrations() int {
	ms, err := migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}
