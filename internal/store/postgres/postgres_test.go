package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"latchkey/internal/store"
	"latchkey/internal/store/postgres"
	"latchkey/internal/store/postgres/pgtest"
	"latchkey/internal/store/storetest"
)

// openStore opens a store on a fresh database, closed when t ends.
func openStore(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestReopen checks that opening an existing database again is idempotent
// and keeps its data.
func TestReopen(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	c := store.Contractor{Name: "alice", Email: "alice@example.com"}
	if err := s.CreateContractor(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for range 2 {
		s := openStore(t, dsn)
		got, err := s.Contractor(t.Context(), "alice")
		if err != nil || got.Email != c.Email {
			t.Errorf("after reopen: Contractor = %+v, %v", got, err)
		}
		if n := migrationRows(t, s); n != postgres.Migrations() {
			t.Errorf("schema_migrations has %d rows, want %d (one per embedded migration)", n, postgres.Migrations())
		}
		s.Close()
	}
}

func migrationRows(t *testing.T, s *postgres.Store) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConcurrentOpen: processes starting at once on an empty database
// apply the migrations exactly once (the advisory lock), and all open.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 8
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(context.Background(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	if got := migrationRows(t, stores[0]); got != postgres.Migrations() {
		t.Errorf("schema_migrations has %d rows, want %d", got, postgres.Migrations())
	}
}

// TestNewerSchema checks that a database migrated by a newer binary is
// refused.
func TestNewerSchema(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := openStore(t, dsn)
	if _, err := s.Pool().Exec(t.Context(), `INSERT INTO schema_migrations (version) VALUES (9999)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := postgres.Open(t.Context(), dsn)
	if !errors.Is(err, postgres.ErrNewerSchema) {
		if err == nil {
			s2.Close()
		}
		t.Fatalf("Open of a newer database: got %v, want %v", err, postgres.ErrNewerSchema)
	}
}

// TestPasswordNeverShown: the errors of a bad or unreachable connection
// string never contain its password.
func TestPasswordNeverShown(t *testing.T) {
	const pw = "s3cr%et-pa55"
	for _, dsn := range []string{
		"postgres://user:" + pw + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"postgres://user:" + pw + "@127.0.0.1:1/db?sslmode=bogus",
		"postgres://user:" + pw + "@[::1/db",
		"host=127.0.0.1 port=1 user=u password=" + pw + " sslmode=disable connect_timeout=2",
		"host=127.0.0.1 port=1 user=u password='" + pw + "' sslmode=nope",
		"postgres://user@127.0.0.1:1/db?password=" + pw + "&sslmode=disable&connect_timeout=2",
	} {
		t.Run(fmt.Sprint(len(dsn)), func(t *testing.T) {
			s, err := postgres.Open(t.Context(), dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open: no error")
			}
			for _, p := range []string{pw, "s3cr", "pa55"} {
				if strings.Contains(err.Error(), p) {
					t.Errorf("error shows the password: %v", err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", err)
			}
		})
	}
}

// TestRedact: Redact hides the password of a URL, in its user info or its
// query.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h/db":              "postgres://u:xxxxx@h/db",
		"postgres://u@h/db?password=pw&x=1": "postgres://u@h/db?password=xxxxx&x=1",
		"postgres://u@h/db":                 "postgres://u@h/db",
		"host=h password=pw":                "(connection string)",
		"postgres://u@h/db?password=p%zz":   "(connection string)",
	} {
		if got := postgres.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
