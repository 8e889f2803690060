package cli

import (
	"github.com/spf13/pflag"

	"latchkey/internal/store/postgres"
)

// storeUsage is the help of every --store flag.
const storeUsage = "PostgreSQL connection string (postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=verify-full) of a store to use instead of the SQLite database in the data directory; prefer PGPASSWORD or ~/.pgpass to a password in it"

// addStoreFlag adds --store to f, stored in p.
func addStoreFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "store", "", storeUsage)
}

// checkStore refuses, as bad usage, a --store value that is not a
// connection string; the error never shows its password.
func checkStore(dsn string) error {
	if dsn == "" {
		return nil
	}
	if _, _, err := postgres.ParseDSN(dsn); err != nil {
		return usagef("--store: %v", err)
	}
	return nil
}
