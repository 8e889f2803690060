package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/audit"
)

// auditPageSize is the number of records per audit page.
const auditPageSize = 50

// auditView is the audit page: records newest first, and the cursor of
// the next (older) page, 0 if none.
type auditView struct {
	Filter  audit.Filter
	Entries []audit.Entry
	Next    int64

	Checkpoint *checkpointView // the latest signed, nil if none
	CanVerify  bool            // this server can verify its log
	Verifying  time.Time       // when the running verification started, zero if none
	Verified   *verifyResult   // the last verification in this process, nil if none
}

func (h *Handler) auditPage(ctx context.Context, w http.ResponseWriter, u user) error {
	if h.cfg.Audit == nil {
		return &access.Error{Reason: access.ReasonNotFound, Msg: "this server does not search its audit log"}
	}
	q := u.r.URL.Query()
	f := audit.Filter{Contractor: q.Get("contractor"), TokenID: q.Get("token"), Action: q.Get("action"),
		Decision: q.Get("decision"), Limit: auditPageSize}
	switch f.Decision {
	case "", audit.Allow, audit.Deny:
	default:
		return &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("invalid decision %q: want allow or deny", f.Decision)}
	}
	if raw := q.Get("before"); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			return &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("invalid before %q", raw)}
		}
		f.Before = n
	}
	es, err := h.search(ctx, f)
	if err != nil {
		return err
	}
	v := auditView{Filter: f, Entries: es, CanVerify: h.cfg.AuditLog != nil}
	if v.Checkpoint, err = h.latestCheckpoint(ctx); err != nil {
		return err
	}
	v.Verifying, v.Verified = h.verifies.state()
	if len(es) == f.Limit {
		v.Next = es[len(es)-1].Index
	}
	h.render(w, &u, http.StatusOK, "audit", "Audit log", v)
	return nil
}
