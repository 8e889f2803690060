package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/sqlite"
)

// searchRec is record i of BenchmarkSearch's log, spread like production: 10,000
// contractors, 20 services, one request in 50 denied, a few admin actions.
func searchRec(i int) audit.Record {
	r := audit.Record{
		Time:       time.Unix(1_900_000_000, 0).Add(time.Duration(i) * time.Millisecond).UTC(),
		Actor:      fmt.Sprintf("t%011d", i%30000),
		Action:     "gateway.request",
		Contractor: fmt.Sprintf("c%05d", i%10000),
		TokenID:    fmt.Sprintf("t%011d", i%30000),
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

func fillSearch(tb testing.TB, n int) *sqlite.AuditStorage {
	tb.Helper()
	s := openStore(tb, filepath.Join(tb.TempDir(), "latchkey.db"))
	st := s.Audit(sqlite.SyncNormal)
	l := audit.New(st, audit.Config{})
	defer l.Close()
	recs := make([]audit.Record, 4096)
	for i := 0; i < n; i += len(recs) {
		k := min(len(recs), n-i)
		for j := range k {
			recs[j] = searchRec(i + j)
		}
		if _, err := l.Append(context.Background(), recs[:k]...); err != nil {
			tb.Fatal(err)
		}
	}
	return st
}

var searches = []struct {
	name string
	f    audit.Filter
	want int
}{
	{"contractor", audit.Filter{Contractor: "c04242"}, 100},
	{"contractor-denied", audit.Filter{Contractor: "c04250", Decision: audit.Deny}, 100},
	{"token", audit.Filter{TokenID: "t00000012345"}, 34},
	{"service-window", audit.Filter{Service: "svc07", Since: time.Unix(1_900_000_050, 0), Until: time.Unix(1_900_000_060, 0)}, 100},
	{"action-rare", audit.Filter{Action: "token.revoke"}, 100},
	{"denied", audit.Filter{Decision: audit.Deny}, 100},
}

func TestSearch(t *testing.T) {
	audittest.RunSearch(t, func(t *testing.T) audittest.SearchStorage {
		return openStore(t, filepath.Join(t.TempDir(), "latchkey.db")).Audit(sqlite.SyncNormal)
	})
}

// BenchmarkSearch runs filtered searches (a page of up to 100, newest
// first) over 1,000,000 records. Target: <= 100 ms each.
func BenchmarkSearch(b *testing.B) {
	st := fillSearch(b, 1_000_000)
	for _, s := range searches {
		b.Run(s.name, func(b *testing.B) {
			var n int
			for b.Loop() {
				got, err := st.Search(context.Background(), s.f)
				if err != nil {
					b.Fatal(err)
				}
				n = len(got)
			}
			b.ReportMetric(float64(n), "found")
		})
	}
}
