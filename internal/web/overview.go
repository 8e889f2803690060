package web

import (
	"context"
	"net/http"
	"time"

	"latchkey/internal/audit"
)

// overviewView holds the overview's counts; a count the admin may not
// read is -1 and not shown.
type overviewView struct {
	Live, Expiring, Unused int
	Denials                int
	DenialsCapped          bool // Denials is audit.MaxSearch: at least that many
	Chart                  *chart
}

// expiringWithin is the overview's "expiring soon" window.
const expiringWithin = 7 * 24 * time.Hour

func (h *Handler) overview(ctx context.Context, w http.ResponseWriter, u user) error {
	now := h.cfg.Now()
	v := overviewView{Live: -1, Expiring: -1, Unused: -1, Denials: -1}
	if u.s.can("tokens", "read") {
		ts, err := h.cfg.Authority.Tokens(ctx, "", true)
		if err != nil {
			return err
		}
		v.Live, v.Expiring, v.Unused = 0, 0, 0
		for _, t := range ts {
			if t.Admin {
				continue
			}
			v.Live++
			if t.ExpiresAt.Before(now.Add(expiringWithin)) {
				v.Expiring++
			}
			if t.LastUsedAt.IsZero() {
				v.Unused++
			}
		}
	}
	if h.cfg.Audit != nil && u.s.can("audit", "read") {
		es, err := h.search(ctx, audit.Filter{Decision: audit.Deny, Since: now.Add(-24 * time.Hour), Limit: audit.MaxSearch})
		if err != nil {
			return err
		}
		v.Denials, v.DenialsCapped = len(es), len(es) == audit.MaxSearch
		c, err := h.requestChart(ctx, now)
		if err != nil {
			return err
		}
		v.Chart = &c
	}
	h.render(w, &u, http.StatusOK, "overview", "Overview", v)
	return nil
}
