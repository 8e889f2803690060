package sqlite_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
	"latchkey/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "latchkey.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestReopen checks that opening an existing database again is idempotent
// and keeps its data.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	c := store.Contractor{Name: "alice", Email: "alice@example.com"}
	if err := s.CreateContractor(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s, err = sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		got, err := s.Contractor(t.Context(), "alice")
		if err != nil || got.Email != c.Email {
			t.Errorf("after reopen: Contractor = %+v, %v", got, err)
		}
		var versions int
		if err := s.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
			t.Fatal(err)
		}
		if want := countMigrations(t); versions != want {
			t.Errorf("schema_migrations has %d rows, want %d (one per embedded migration)", versions, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNewerSchema checks that a database migrated by a newer binary is
// refused.
func TestNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(t.Context(), `INSERT INTO schema_migrations (version) VALUES (9999)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(t.Context(), path)
	if !errors.Is(err, sqlite.ErrNewerSchema) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open of a newer database: got %v, want %v", err, sqlite.ErrNewerSchema)
	}
	t.Log(err)
}

// TestPragmas checks the connection settings the package documents.
func TestPragmas(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "1",
		"foreign_keys": "1",
		"busy_timeout": "5000",
	} {
		var got string
		if err := s.DB().QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
}

// TestPathWithSpecialCharacters checks that a path is taken literally, not
// as a URI: '?', '#', '%' and spaces are part of the file name.
func TestPathWithSpecialCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?x=1#y")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "db %41.sqlite")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the literal path: %v", err)
	}
}

// TestRelativePath: the README runs serve --data ./latchkey-data.
func TestRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("data", 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(t.Context(), "data/latchkey.db")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat("data/latchkey.db"); err != nil {
		t.Fatal(err)
	}
}

// countMigrations counts the embedded migration files.
func countMigrations(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
