package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
	"latchkey/internal/token"
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

// maxRevoke caps the token ids one "Revoke all selected" may carry.
const maxRevoke = 500

// revokedView is the result of revoking the selected tokens: each id
// revoked, or refused with the reason.
type revokedView struct {
	Revoked []string
	Refused []refusal
}

type refusal struct{ ID, Msg string }

// revokeSelected revokes the tokens selected on the reports page, each
// through Authority.Revoke (so each is audited, allowed or refused), and
// shows what was revoked and what was refused. The ids are checked
// first: none (or too many, or one malformed) and nothing is revoked.
func (h *Handler) revokeSelected(ctx context.Context, w http.ResponseWriter, u user) error {
	ids, err := selectedIDs(u.r.PostForm["id"])
	if err != nil {
		return err
	}
	var v revokedView
	for _, id := range ids {
		err := h.cfg.Authority.Revoke(ctx, u.actor(), id)
		var e *access.Error
		switch {
		case err == nil:
			v.Revoked = append(v.Revoked, id)
		case errors.As(err, &e):
			v.Refused = append(v.Refused, refusal{id, e.Msg})
		default:
			h.cfg.Log.Error("web: revoke selected", "token", id, "err", err)
			v.Refused = append(v.Refused, refusal{id, "internal error; see the server log"})
		}
	}
	h.render(w, &u, http.StatusOK, "revoked", "Revoke selected tokens", v)
	return nil
}

// selectedIDs checks the posted token ids: one to maxRevoke well-formed
// ids, duplicates dropped, in the order posted.
func selectedIDs(raw []string) ([]string, error) {
	if len(raw) == 0 {
		return nil, &access.Error{Reason: access.ReasonInvalid, Msg: "select at least one token"}
	}
	if len(raw) > maxRevoke {
		return nil, &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("%d tokens selected: revoke at most %d at a time", len(raw), maxRevoke)}
	}
	seen := make(map[string]bool, len(raw))
	ids := make([]string, 0, len(raw))
	for _, id := range raw {
		if !token.ValidID(id) {
			return nil, &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("invalid token id %q", id)}
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}
