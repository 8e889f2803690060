package web

import (
	"context"
	"testing"
	"time"

	"latchkey/internal/audit"
)

// fakeLog is an audit.Searcher over records kept oldest first.
type fakeLog []audit.Record

func (l fakeLog) Search(_ context.Context, f audit.Filter) ([]audit.Entry, error) {
	var out []audit.Entry
	for i := len(l) - 1; i >= 0 && len(out) < f.Limit; i-- {
		r := l[i]
		if (f.Before > 0 && int64(i) >= f.Before) || r.Action != f.Action || r.Time.Before(f.Since) {
			continue
		}
		out = append(out, audit.Entry{Index: int64(i), Record: r})
	}
	return out, nil
}

func TestRequestChart(t *testing.T) {
	now := time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC)
	var log fakeLog
	add := func(at time.Time, decision string, n int) {
		for range n {
			log = append(log, audit.Record{Time: at, Action: "gateway.request", Decision: decision})
		}
	}
	add(now.AddDate(0, 0, -40), audit.Allow, 5) // before the window
	add(now.AddDate(0, 0, -29), audit.Deny, 2)  // the first day
	add(now.AddDate(0, 0, -1), audit.Allow, 1500)
	log = append(log, audit.Record{Time: now, Action: "token.issue"})
	add(now, audit.Deny, 3)

	h := &Handler{cfg: Config{Audit: log}}
	c, err := h.requestChart(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Allowed != 1500 || c.Denied != 5 || c.Max != 1500 || c.Capped {
		t.Fatalf("chart: allowed %d denied %d max %d capped %v; want 1500, 5, 1500, false", c.Allowed, c.Denied, c.Max, c.Capped)
	}
	if len(c.Bars) != 2*chartDays {
		t.Fatalf("%d bars, want %d", len(c.Bars), 2*chartDays)
	}
	first, yesterday, today := c.Bars[1], c.Bars[2*(chartDays-2)], c.Bars[2*chartDays-1]
	if !first.Denied || first.N != 2 || first.Day != "2026-11-01" || first.H < 1 {
		t.Errorf("first day's denied bar = %+v", first)
	}
	if yesterday.Denied || yesterday.N != 1500 || yesterday.H != chartHeight || yesterday.Y != 0 {
		t.Errorf("yesterday's allowed bar = %+v", yesterday)
	}
	if !today.Denied || today.N != 3 || today.Day != "2026-11-30" {
		t.Errorf("today's denied bar = %+v", today)
	}
}
