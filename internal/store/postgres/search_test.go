package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/postgres"
	"latchkey/internal/store/postgres/pgtest"
)

// searchRec is record i of a log spread like production: 1,000
// contractors, 20 services, one request in 50 denied, a few admin actions.
func searchRec(i int) audit.Record {
	r := audit.Record{
		Time:       time.Unix(1_900_000_000, 0).Add(time.Duration(i) * time.Millisecond).UTC(),
		Actor:      fmt.Sprintf("t%011d", i%3000),
		Action:     "gateway.request",
		Contractor: fmt.Sprintf("c%05d", i%1000),
		TokenID:    fmt.Sprintf("t%011d", i%3000),
		Service:    fmt.Sprintf("svc%02d", i%20),
		Method:     "GET",
		Path:       fmt.Sprintf("/v1/items/%d", i),
		Status:     200,
		Decision:   audit.Allow,
		Source:     "10.0.0.1",
	}
	if i%50 == 0 {
		r.Decision, r.Status, r.Reason = audit.Deny, 403, "scope_denied"
	}
	if i%1000 == 0 {
		r.Action, r.Method, r.Path, r.Decision = "token.revoke", "", "", audit.Allow
	}
	return r
}

func TestSearch(t *testing.T) {
	st := openStore(t, pgtest.DSN(t)).Audit(postgres.SyncNormal)
	l := audit.New(st, audit.Config{})
	defer l.Close()
	const n = 20_000
	recs := make([]audit.Record, 4096)
	for i := 0; i < n; i += len(recs) {
		k := min(len(recs), n-i)
		for j := range k {
			recs[j] = searchRec(i + j)
		}
		if _, err := l.Append(context.Background(), recs[:k]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		name string
		f    audit.Filter
		want int
	}{
		{"contractor", audit.Filter{Contractor: "c00042"}, 20},
		{"contractor-denied", audit.Filter{Contractor: "c00050", Decision: audit.Deny}, 20},
		{"token", audit.Filter{TokenID: "t00000002345"}, 6},
		{"service-window", audit.Filter{Service: "svc07", Since: time.Unix(1_900_000_005, 0), Until: time.Unix(1_900_000_006, 0)}, 50},
		{"action-rare", audit.Filter{Action: "token.revoke"}, 20},
		{"denied", audit.Filter{Decision: audit.Deny}, 100},
		{"before", audit.Filter{Decision: audit.Deny, Before: 1000, Limit: 5}, 5},
	} {
		got, err := st.Search(t.Context(), s.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != s.want {
			t.Errorf("%s: %d found, want %d", s.name, len(got), s.want)
		}
		for i, e := range got {
			r := e.Record
			if s.f.Contractor != "" && r.Contractor != s.f.Contractor || s.f.Decision != "" && r.Decision != s.f.Decision ||
				s.f.TokenID != "" && r.TokenID != s.f.TokenID || s.f.Action != "" && r.Action != s.f.Action ||
				s.f.Service != "" && r.Service != s.f.Service || !s.f.Since.IsZero() && r.Time.Before(s.f.Since) ||
				!s.f.Until.IsZero() && !r.Time.Before(s.f.Until) || s.f.Before > 0 && e.Index >= s.f.Before {
				t.Fatalf("%s: record %d %+v does not match the filter", s.name, e.Index, r)
			}
			if i > 0 && e.Index >= got[i-1].Index {
				t.Fatalf("%s: not newest first", s.name)
			}
		}
	}
}

// TestSearchSeesNewRecords: a record is found by Search as soon as its
// Append has returned, whatever the background indexer has done.
func TestSearchSeesNewRecords(t *testing.T) {
	st := openStore(t, pgtest.DSN(t)).Audit(postgres.SyncNormal)
	l := audit.New(st, audit.Config{})
	defer l.Close()
	for i := range 50 {
		first, err := l.Append(t.Context(), audittest.Rec(i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.Search(t.Context(), audit.Filter{Limit: 1})
		if err != nil || len(got) != 1 || got[0].Index != first {
			t.Fatalf("after Append %d: Search = %v, %v; want record %d", i, got, err, first)
		}
	}
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

// TestSearchNUL: a record field holding NUL (valid UTF-8, but not
// PostgreSQL text) is indexed, found, and checked like any other.
func TestSearchNUL(t *testing.T) {
	st := openStore(t, pgtest.DSN(t)).Audit(postgres.SyncNormal)
	l := audit.New(st, audit.Config{})
	defer l.Close()
	r := audittest.Rec(0)
	r.Service = "bill\x00ing"
	if _, err := l.Append(t.Context(), audittest.Rec(1), r); err != nil {
		t.Fatal(err)
	}
	got, err := st.Search(t.Context(), audit.Filter{Service: "bill\x00ing"})
	if err != nil || len(got) != 1 || got[0].Record.Service != r.Service {
		t.Fatalf("Search = %+v, %v; want the record with NUL in its service", got, err)
	}
	if err := st.CheckSearchColumns(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
}
