package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

// requestRow is an access request as the list shows it.
type requestRow struct {
	store.AccessRequest
	Now string // its state now (pending past its expiry reads expired)
}

// requestsView is the access requests page.
type requestsView struct {
	State    string // the filter
	Requests []requestRow
}

func (h *Handler) requests(ctx context.Context, w http.ResponseWriter, u user) error {
	v := requestsView{State: u.r.URL.Query().Get("state")}
	if !u.r.URL.Query().Has("state") {
		v.State = store.RequestPending
	}
	rs, err := h.cfg.Authority.Requests(ctx, "", v.State)
	if err != nil {
		return err
	}
	now := h.cfg.Now()
	for _, r := range rs {
		v.Requests = append(v.Requests, requestRow{r, r.StateAt(now)})
	}
	h.render(w, &u, http.StatusOK, "requests", "Access requests", v)
	return nil
}

func (h *Handler) approve(ctx context.Context, w http.ResponseWriter, u user) error {
	if _, err := h.cfg.Authority.ApproveRequest(ctx, u.actor(), u.r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, u.r, "/ui/requests", http.StatusSeeOther)
	return nil
}

func (h *Handler) deny(ctx context.Context, w http.ResponseWriter, u user) error {
	reason := strings.TrimSpace(u.r.PostForm.Get("reason"))
	if _, err := h.cfg.Authority.DenyRequest(ctx, u.actor(), u.r.PathValue("id"), reason); err != nil {
		return err
	}
	http.Redirect(w, u.r, "/ui/requests", http.StatusSeeOther)
	return nil
}

// ttl formats a request's TTL.
func ttl(d time.Duration) string { return timespec.Format(d) }
