// Package pgtest gives tests a throwaway PostgreSQL database on the
// server named by the environment (see DSN).
package pgtest

import (
	"context"
	"os"
	"testing"

	"latchkey/internal/store/postgres"
)

// Environment variables DSN reads.
const (
	// EnvServer is a superuser (or CREATEDB) connection string of the
	// server to create test databases on, e.g.
	// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
	EnvServer = "LATCHKEY_TEST_POSTGRES"
	// EnvRequired, set to 1, makes a missing EnvServer a test failure
	// instead of a skip (test.sh sets it, having started a server).
	EnvRequired = "LATCHKEY_POSTGRES_REQUIRED"
)

// DSN creates a new, empty database lk_test_<random> on the server named
// by EnvServer, drops it (closing any connection left) when t ends, and
// returns a connection string for it. Without EnvServer it skips t, or
// fails it if EnvRequired is 1.
func DSN(t testing.TB) string {
	t.Helper()
	server := os.Getenv(EnvServer)
	if server == "" {
		if os.Getenv(EnvRequired) == "1" {
			t.Fatalf("%s is not set and %s=1: no PostgreSQL server to test on", EnvServer, EnvRequired)
		}
		t.Skipf("%s is not set: skipping the PostgreSQL tests", EnvServer)
	}
	dsn, drop, err := postgres.Scratch(context.Background(), server, "lk_test_")
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvServer, err)
	}
	t.Cleanup(func() {
		if err := drop(context.Background()); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return dsn
}
