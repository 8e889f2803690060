package web

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

// defaultIdle is the reports page's idle window when none is asked for.
const defaultIdle = 30 * 24 * time.Hour

// reportsView is the reports page: who holds live tokens, what each
// contractor (or Contractor alone) can touch, and what is unused for the
// idle window.
type reportsView struct {
	Idle         string
	Contractor   string // the access report's filter, "" for everyone
	Active       []store.ActiveRow
	Access       []store.AccessRow
	UnusedTokens []store.UnusedToken
	UnusedScopes []access.UnusedScope
}

func (h *Handler) reports(ctx context.Context, w http.ResponseWriter, u user) error {
	idle := defaultIdle
	if raw := u.r.URL.Query().Get("idle"); raw != "" {
		d, err := timespec.ParseDuration(raw)
		if err != nil || d <= 0 {
			return &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("invalid idle %q: want a positive duration such as 30d", raw)}
		}
		idle = d
	}
	v := reportsView{Idle: timespec.Format(idle), Contractor: u.r.URL.Query().Get("contractor")}
	var err error
	if v.Active, err = h.cfg.Authority.ActiveReport(ctx); err != nil {
		return err
	}
	if v.Access, err = h.cfg.Authority.AccessReport(ctx, v.Contractor); err != nil {
		return err
	}
	if v.UnusedTokens, v.UnusedScopes, err = h.cfg.Authority.Unused(ctx, idle); err != nil {
		return err
	}
	h.render(w, &u, http.StatusOK, "reports", "Reports", v)
	return nil
}
