package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

// tokenRow is a token as lists show it: never its secret (the record
// holds only its hash).
type tokenRow struct {
	store.Token
	State string // live, expired or revoked
}

func rows(ts []store.Token, now time.Time) []tokenRow {
	out := make([]tokenRow, 0, len(ts))
	for _, t := range ts {
		st := "live"
		switch {
		case !t.RevokedAt.IsZero():
			st = "revoked"
		case !now.Before(t.ExpiresAt):
			st = "expired"
		}
		out = append(out, tokenRow{t, st})
	}
	return out
}

// tokensView is the tokens page.
type tokensView struct {
	Contractor, State string // the filter
	Tokens            []tokenRow
	Contractors       []store.Contractor // for the issue form, if allowed
}

func (h *Handler) tokens(ctx context.Context, w http.ResponseWriter, u user) error {
	q := u.r.URL.Query()
	v := tokensView{Contractor: q.Get("contractor"), State: q.Get("state")}
	switch v.State {
	case "", "live", "expired", "revoked":
	default:
		return &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("invalid state %q: want live, expired or revoked", v.State)}
	}
	ts, err := h.cfg.Authority.Tokens(ctx, v.Contractor, v.State == "live")
	if err != nil {
		return err
	}
	for _, r := range rows(ts, h.cfg.Now()) {
		if v.State == "" || r.State == v.State {
			v.Tokens = append(v.Tokens, r)
		}
	}
	if u.s.can("tokens", "write") && u.s.can("contractors", "read") {
		if v.Contractors, err = h.cfg.Authority.Contractors(ctx); err != nil {
			return err
		}
	}
	h.render(w, &u, http.StatusOK, "tokens", "Tokens", v)
	return nil
}

// issue issues a contractor token and shows its text, once, in the
// response to the POST itself: it is never in a URL, a redirect or a
// cache (Cache-Control: no-store).
func (h *Handler) issue(ctx context.Context, w http.ResponseWriter, u user) error {
	f := u.r.PostForm.Get
	req := access.IssueRequest{Contractor: strings.TrimSpace(f("contractor")), Scopes: fieldList(f("scopes")),
		CIDRs: fieldList(f("cidrs")), Note: strings.TrimSpace(f("note"))}
	if raw := strings.TrimSpace(f("ttl")); raw != "" {
		d, err := timespec.ParseDuration(raw)
		if err != nil {
			return &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("invalid ttl: %v", err)}
		}
		req.TTL = d
	}
	if raw := strings.TrimSpace(f("uses")); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			return &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("invalid uses %q: want a whole number", raw)}
		}
		req.MaxUses = n
	}
	iss, err := h.cfg.Authority.Issue(ctx, u.actor(), req)
	if err != nil {
		return err
	}
	h.render(w, &u, http.StatusCreated, "issued", "Token issued", iss)
	return nil
}

func (h *Handler) revoke(ctx context.Context, w http.ResponseWriter, u user) error {
	id := u.r.PathValue("id")
	if err := h.cfg.Authority.Revoke(ctx, u.actor(), id); err != nil {
		return err
	}
	back := "/ui/tokens"
	if c := u.r.PostForm.Get("contractor"); c != "" {
		back = contractorURL(c)
	}
	http.Redirect(w, u.r, back, http.StatusSeeOther)
	return nil
}

// rotate issues a successor of a token and shows its text once, as issue
// does; the old token ends after the grace (at once without one).
func (h *Handler) rotate(ctx context.Context, w http.ResponseWriter, u user) error {
	var grace time.Duration
	if raw := strings.TrimSpace(u.r.PostForm.Get("grace")); raw != "" {
		d, err := timespec.ParseDuration(raw)
		if err != nil {
			return &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("invalid grace: %v", err)}
		}
		grace = d
	}
	iss, err := h.cfg.Authority.Rotate(ctx, u.actor(), u.r.PathValue("id"), grace)
	if err != nil {
		return err
	}
	h.render(w, &u, http.StatusCreated, "issued", "Token rotated", iss)
	return nil
}
