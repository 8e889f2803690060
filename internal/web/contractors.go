package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

func (h *Handler) contractors(ctx context.Context, w http.ResponseWriter, u user) error {
	cs, err := h.cfg.Authority.Contractors(ctx)
	if err != nil {
		return err
	}
	h.render(w, &u, http.StatusOK, "contractors", "Contractors", cs)
	return nil
}

// timeField parses an RFC 3339 or relative (30d) time from a form.
func (h *Handler) timeField(u user, field string, required bool) (time.Time, error) {
	raw := strings.TrimSpace(u.r.PostForm.Get(field))
	if raw == "" {
		if required {
			return time.Time{}, &access.Error{Reason: access.ReasonInvalid, Msg: field + " is required"}
		}
		return time.Time{}, nil
	}
	t, err := timespec.ParseTime(raw, h.cfg.Now())
	if err != nil {
		return time.Time{}, &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("invalid %s: %v", field, err)}
	}
	return t, nil
}

func (h *Handler) onboard(ctx context.Context, w http.ResponseWriter, u user) error {
	until, err := h.timeField(u, "until", true)
	if err != nil {
		return err
	}
	f := u.r.PostForm.Get
	c, err := h.cfg.Authority.AddContractor(ctx, u.actor(), access.NewContractor{Name: strings.TrimSpace(f("name")),
		Email: strings.TrimSpace(f("email")), Company: strings.TrimSpace(f("company")), Sponsor: strings.TrimSpace(f("sponsor")), Until: until})
	if err != nil {
		return err
	}
	http.Redirect(w, u.r, contractorURL(c.Name), http.StatusSeeOther)
	return nil
}

func contractorURL(name string) string { return "/ui/contractors/" + url.PathEscape(name) }

// contractorView is the detail page: grants and tokens are nil when the
// admin may not read them.
type contractorView struct {
	C      store.Contractor
	Grants []store.Grant
	Tokens []tokenRow
	Now    time.Time
}

func (h *Handler) contractor(ctx context.Context, w http.ResponseWriter, u user) error {
	c, err := h.cfg.Authority.Contractor(ctx, u.r.PathValue("name"))
	if err != nil {
		return err
	}
	v := contractorView{C: c, Now: h.cfg.Now()}
	if u.s.can("grants", "read") {
		if v.Grants, err = h.cfg.Authority.Grants(ctx, c.Name, false); err != nil {
			return err
		}
	}
	if u.s.can("tokens", "read") {
		ts, err := h.cfg.Authority.Tokens(ctx, c.Name, false)
		if err != nil {
			return err
		}
		v.Tokens = rows(ts, v.Now)
	}
	h.render(w, &u, http.StatusOK, "contractor", "Contractor "+c.Name, v)
	return nil
}

func (h *Handler) confirmOffboard(ctx context.Context, w http.ResponseWriter, u user) error {
	c, err := h.cfg.Authority.Contractor(ctx, u.r.PathValue("name"))
	if err != nil {
		return err
	}
	h.render(w, &u, http.StatusOK, "offboard", "Offboard "+c.Name+"?", c)
	return nil
}

func (h *Handler) offboard(ctx context.Context, w http.ResponseWriter, u user) error {
	name := u.r.PathValue("name")
	if _, err := h.cfg.Authority.Offboard(ctx, u.actor(), name); err != nil {
		return err
	}
	http.Redirect(w, u.r, contractorURL(name), http.StatusSeeOther)
	return nil
}

// fieldList splits a form field on whitespace (not on commas: a scope
// such as billing:GET,HEAD:/x holds them).
func fieldList(v string) []string { return strings.Fields(v) }

func (h *Handler) grant(ctx context.Context, w http.ResponseWriter, u user) error {
	until, err := h.timeField(u, "until", false)
	if err != nil {
		return err
	}
	name := u.r.PathValue("name")
	if _, err := h.cfg.Authority.AddGrant(ctx, u.actor(), name, fieldList(u.r.PostForm.Get("scopes")), until); err != nil {
		return err
	}
	http.Redirect(w, u.r, contractorURL(name), http.StatusSeeOther)
	return nil
}

func (h *Handler) revokeGrant(ctx context.Context, w http.ResponseWriter, u user) error {
	id, err := strconv.ParseInt(u.r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return &access.Error{Reason: access.ReasonNotFound, Msg: fmt.Sprintf("no grant %q", u.r.PathValue("id"))}
	}
	if err := h.cfg.Authority.RevokeGrant(ctx, u.actor(), id); err != nil {
		return err
	}
	back := "/ui/contractors"
	if c := u.r.PostForm.Get("contractor"); c != "" {
		back = contractorURL(c)
	}
	http.Redirect(w, u.r, back, http.StatusSeeOther)
	return nil
}
