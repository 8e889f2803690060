package web

import (
	"context"
	"time"

	"latchkey/internal/audit"
)

// Chart geometry, in SVG user units.
const (
	chartDays   = 30
	chartBar    = 10 // width of one bar; two bars (allowed, denied) a day
	chartDay    = 2*chartBar + 4
	chartHeight = 120
	chartPages  = 20 // searches of audit.MaxSearch records at most
)

// bar is one bar of the chart.
type bar struct {
	X, Y, H int
	N       int
	Day     string
	Denied  bool
}

// chart is the gateway requests of the last 30 days, allowed and denied
// per day (UTC), newest day last.
type chart struct {
	Bars          []bar
	Width, Height int
	Max           int
	Allowed       int
	Denied        int
	Capped        bool // the search stopped at chartPages: older days are incomplete
	First, Last   string
}

// requestChart counts gateway requests per day and decision from the
// audit log, newest first, reading at most chartPages searches.
func (h *Handler) requestChart(ctx context.Context, now time.Time) (chart, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(chartDays - 1))
	var allow, deny [chartDays]int
	f := audit.Filter{Action: "gateway.request", Since: first, Limit: audit.MaxSearch}
	c := chart{Width: chartDays * chartDay, Height: chartHeight + 4,
		First: first.Format("Jan 2"), Last: today.Format("Jan 2")}
	for range chartPages {
		es, err := h.search(ctx, f)
		if err != nil {
			return chart{}, err
		}
		for _, e := range es {
			d := int(e.Record.Time.UTC().Sub(first) / (24 * time.Hour))
			if d < 0 || d >= chartDays {
				continue
			}
			if e.Record.Decision == audit.Deny {
				deny[d]++
			} else {
				allow[d]++
			}
		}
		if len(es) < f.Limit {
			c.draw(first, allow, deny)
			return c, nil
		}
		f.Before = es[len(es)-1].Index
	}
	c.Capped = true
	c.draw(first, allow, deny)
	return c, nil
}

func (c *chart) draw(first time.Time, allow, deny [chartDays]int) {
	for d := range chartDays {
		c.Max = max(c.Max, allow[d], deny[d])
		c.Allowed += allow[d]
		c.Denied += deny[d]
	}
	scale := func(n int) int {
		if c.Max == 0 || n == 0 {
			return 0
		}
		return max(1, n*chartHeight/c.Max)
	}
	for d := range chartDays {
		day := first.AddDate(0, 0, d).Format("2006-01-02")
		x := d * chartDay
		for i, n := range []int{allow[d], deny[d]} {
			hgt := scale(n)
			c.Bars = append(c.Bars, bar{X: x + i*chartBar, Y: chartHeight - hgt, H: hgt, N: n, Day: day, Denied: i == 1})
		}
	}
}
