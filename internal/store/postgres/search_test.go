package postgres_test

import (
	"errors"
	"strings"
	"testing"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/postgres"
	"latchkey/internal/store/postgres/pgtest"
)

func TestSearch(t *testing.T) {
	audittest.RunSearch(t, func(t *testing.T) audittest.SearchStorage {
		return openStore(t, pgtest.DSN(t)).Audit(postgres.SyncNormal)
	})
}

// TestSearchIndexTamper: the search index is checked against the leaves:
// a row edited or removed there (to hide a record from search) is
// reported by CheckSearchColumns, and a dropped index is rebuilt.
func TestSearchIndexTamper(t *testing.T) {
	for _, tt := range []struct {
		name, sql, reason string
	}{
		{"edited", `UPDATE audit_index SET contractor = 'nobody' WHERE idx = 17`, "search columns differ"},
		{"removed", `DELETE FROM audit_index WHERE idx = 17`, "missing from the search index"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, pgtest.DSN(t))
			st := s.Audit(postgres.SyncNormal)
			l := audit.New(st, audit.Config{})
			defer l.Close()
			audittest.AppendConcurrently(t, l, 4, 10)
			if err := st.CheckSearchColumns(t.Context(), 40); err != nil {
				t.Fatalf("untouched: %v", err)
			}
			if _, err := s.Pool().Exec(t.Context(), tt.sql); err != nil {
				t.Fatal(err)
			}
			var ve *audit.VerifyError
			err := st.CheckSearchColumns(t.Context(), 40)
			if !errors.As(err, &ve) || ve.Index != 17 {
				t.Fatalf("CheckSearchColumns = %v, want a VerifyError at 17", err)
			}
			if !strings.Contains(ve.Reason, tt.reason) {
				t.Errorf("reason %q, want %q", ve.Reason, tt.reason)
			}
		})
	}

	t.Run("emptied", func(t *testing.T) {
		s := openStore(t, pgtest.DSN(t))
		st := s.Audit(postgres.SyncNormal)
		l := audit.New(st, audit.Config{})
		defer l.Close()
		audittest.AppendConcurrently(t, l, 4, 10)
		if _, err := s.Pool().Exec(t.Context(), `DELETE FROM audit_index`); err != nil {
			t.Fatal(err)
		}
		if err := st.CheckSearchColumns(t.Context(), 40); err != nil {
			t.Fatalf("rebuilt index: %v", err)
		}
		got, err := st.Search(t.Context(), audit.Filter{Limit: 100})
		if err != nil || len(got) != 40 {
			t.Fatalf("Search after rebuild: %d records, %v; want 40", len(got), err)
		}
	})
}

// TestSearchNULColumns: a record field holding NUL (not PostgreSQL text:
// indexed as U+FFFD) passes the check of the index against the leaves.
// (That it is found is in the audittest search suite.)
func TestSearchNULColumns(t *testing.T) {
	st := openStore(t, pgtest.DSN(t)).Audit(postgres.SyncNormal)
	l := audit.New(st, audit.Config{})
	defer l.Close()
	r := audittest.Rec(0)
	r.Service = "bill\x00ing"
	if _, err := l.Append(t.Context(), audittest.Rec(1), r); err != nil {
		t.Fatal(err)
	}
	if err := st.CheckSearchColumns(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
}
