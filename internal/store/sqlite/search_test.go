package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/sqlite"
)

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
			recs[j] = audittest.SpreadRec(i+j, 10000, 30000) // BenchmarkSearch's log: 10,000 contractors
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
