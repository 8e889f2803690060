package audittest

import (
	"fmt"
	"testing"
	"time"

	"latchkey/internal/audit"
)

// SearchStorage is a Storage that can search its records.
type SearchStorage interface {
	audit.Storage
	audit.Searcher
}

// RunSearch runs the conformance suite of an audit.Searcher. open returns
// a new, empty storage for each subtest.
func RunSearch(t *testing.T, open func(t *testing.T) SearchStorage) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st SearchStorage)
	}{
		{"Filters", testSearchFilters},
		{"SeesNewRecords", testSearchSeesNewRecords},
		{"NUL", testSearchNUL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// SearchRec is record i of a log spread like production (SpreadRec):
// 1,000 contractors and 3,000 tokens.
func SearchRec(i int) audit.Record { return SpreadRec(i, 1000, 3000) }

// SpreadRec is record i of a log spread like production: over contractors
// contractors and tokens tokens, 20 services, one request in 50 denied,
// one record in 1,000 an admin action.
func SpreadRec(i, contractors, tokens int) audit.Record {
	r := audit.Record{
		Time:       time.Unix(1_900_000_000, 0).Add(time.Duration(i) * time.Millisecond).UTC(),
		Actor:      fmt.Sprintf("t%011d", i%tokens),
		Action:     "gateway.request",
		Contractor: fmt.Sprintf("c%05d", i%contractors),
		TokenID:    fmt.Sprintf("t%011d", i%tokens),
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

// testSearchFilters: over 20,000 records, each filter finds exactly the
// records it should (up to its limit), newest first.
func testSearchFilters(t *testing.T, st SearchStorage) {
	l := newLog(t, st)
	const n = 20_000
	recs := make([]audit.Record, 4096)
	for i := 0; i < n; i += len(recs) {
		k := min(len(recs), n-i)
		for j := range k {
			recs[j] = SearchRec(i + j)
		}
		if _, err := l.Append(t.Context(), recs[:k]...); err != nil {
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

// testSearchSeesNewRecords: a record is found by Search as soon as its
// Append has returned, whatever the background indexer has done.
func testSearchSeesNewRecords(t *testing.T, st SearchStorage) {
	l := newLog(t, st)
	for i := range 50 {
		first, err := l.Append(t.Context(), Rec(i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.Search(t.Context(), audit.Filter{Limit: 1})
		if err != nil || len(got) != 1 || got[0].Index != first {
			t.Fatalf("after Append %d: Search = %v, %v; want record %d", i, got, err, first)
		}
	}
}

// testSearchNUL: a record field holding NUL (valid UTF-8, which some
// engines' text type refuses) is indexed and found like any other.
func testSearchNUL(t *testing.T, st SearchStorage) {
	l := newLog(t, st)
	r := Rec(0)
	r.Service = "bill\x00ing"
	if _, err := l.Append(t.Context(), Rec(1), r); err != nil {
		t.Fatal(err)
	}
	got, err := st.Search(t.Context(), audit.Filter{Service: "bill\x00ing"})
	if err != nil || len(got) != 1 || got[0].Record.Service != r.Service {
		t.Fatalf("Search = %+v, %v; want the record with NUL in its service", got, err)
	}
}
