package web

import (
	"errors"
	"net/http"
	"strings"

	"latchkey/internal/access"
)

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.signedIn(r); ok {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	h.render(w, nil, http.StatusOK, "login", "Sign in", "")
}

// login authenticates an admin token and starts a session. The token's
// text is used for this check only and is not kept.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		h.render(w, nil, http.StatusBadRequest, "login", "Sign in", "The form could not be read.")
		return
	}
	src := source(r)
	anon := access.Actor{Source: src.String()}
	text := strings.TrimSpace(r.PostForm.Get("token"))
	tok, set, err := h.cfg.Authority.Authenticate(r.Context(), text, src)
	reason, msg := "", ""
	var refused *access.Error
	switch {
	case errors.As(err, &refused):
		reason, msg = refused.Reason, "That token was refused: "+refused.Msg+"."
	case err != nil:
		h.fail(w, r, nil, err)
		return
	case !tok.Admin:
		reason, msg = access.ReasonForbidden, "Only an admin (lka_) token can sign in to the console."
	case tok.Bound():
		reason, msg = "proof_invalid", "This admin token is bound to a key; the console cannot check its proof."
	}
	if reason != "" {
		req := access.Request{Method: r.Method, Path: r.URL.Path, Status: http.StatusUnauthorized, Reason: reason}
		if err := h.cfg.Authority.RecordRequest(r.Context(), anon, req); err != nil {
			h.fail(w, r, nil, err)
			return
		}
		h.render(w, nil, http.StatusUnauthorized, "login", "Sign in", msg)
		return
	}
	now := h.cfg.Now()
	s := &session{tokenID: tok.ID, name: tok.Note, scopes: set, cidrs: tok.CIDRs,
		tokExpiry: tok.ExpiresAt, created: now, lastSeen: now}
	u := user{s: s, r: r}
	req := access.Request{Method: r.Method, Path: r.URL.Path, Status: http.StatusSeeOther}
	if err := h.cfg.Authority.RecordRequest(r.Context(), u.actor(), req); err != nil {
		h.fail(w, r, nil, err)
		return
	}
	// The cookie lives until the session's absolute end; the idle
	// timeout is enforced here, on the server.
	end := min(s.created.Add(MaxAge).Sub(now), s.tokExpiry.Sub(now))
	http.SetCookie(w, sessionCookie(r, h.sessions.add(s), int(end.Seconds())))
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if u, ok := h.signedIn(r); ok {
		req := access.Request{Method: r.Method, Path: r.URL.Path, Status: http.StatusSeeOther}
		if err := h.cfg.Authority.RecordRequest(r.Context(), u.actor(), req); err != nil {
			h.cfg.Log.Warn("web: sign-out not audited", "token", u.s.tokenID, "err", err)
		}
		h.sessions.remove(u.id)
	}
	http.SetCookie(w, sessionCookie(r, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
