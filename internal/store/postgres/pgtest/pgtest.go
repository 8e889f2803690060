// Package pgtest gives tests a throwaway PostgreSQL database on the
// server named by the environment (see DSN).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables DSN reads.
const (
	// EnvServer is a superuser connection string of the server to create
	// test databases on, e.g.
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
	var b [8]byte
	rand.Read(b[:])
	name := "lk_test_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()
	exec(t, server, `CREATE DATABASE `+ident)
	t.Cleanup(func() { exec(t, server, `DROP DATABASE IF EXISTS `+ident+` WITH (FORCE)`) })
	return withDatabase(t, server, name)
}

// exec runs one statement on the server's maintenance database.
func exec(t testing.TB, server, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvServer, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// withDatabase returns the connection string server with its database
// replaced by name.
func withDatabase(t testing.TB, server, name string) string {
	if strings.HasPrefix(server, "postgres://") || strings.HasPrefix(server, "postgresql://") {
		u, err := url.Parse(server)
		if err != nil {
			t.Fatalf("pgtest: %s: %v", EnvServer, err)
		}
		u.Path = "/" + name
		q := u.Query()
		q.Del("dbname")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return server + " dbname=" + name // keyword/value form: the last one wins
}
