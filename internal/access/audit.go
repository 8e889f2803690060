package access

import (
	"context"
	"fmt"
	"strings"

	"latchkey/internal/audit"
)

// ReasonAuditUnavailable refuses an operation whose audit record could
// not be committed: latchkey fails closed and never acts unaudited.
const ReasonAuditUnavailable = "audit_unavailable"

// Auditor commits audit records; audit.Log is one. Append returns only
// once the records are committed, or with an error.
type Auditor interface {
	Append(ctx context.Context, recs ...audit.Record) (int64, error)
}

// event starts the audit record of an action by an actor.
func (a *Authority) event(by Actor, action string) audit.Record {
	return audit.Record{Actor: by.TokenID, ActorName: by.Name, Action: action, Source: by.Source}
}

// commit appends rec, stamped now. Without an Auditor (unit tests of
// other packages) it records nothing.
func (a *Authority) commit(ctx context.Context, rec audit.Record) error {
	if a.cfg.Audit == nil {
		return nil
	}
	rec.Time = a.cfg.Now().UTC()
	clean(&rec)
	if _, err := a.cfg.Audit.Append(ctx, rec); err != nil {
		a.cfg.Log.Error("audit append failed: refusing the operation", "action", rec.Action, "err", err)
		return &Error{Reason: ReasonAuditUnavailable, Msg: "the audit log cannot be written: operation refused", Err: err}
	}
	return nil
}

// act runs an audited operation. check decides without writing; a
// refusal is recorded as a denial and returned. Otherwise the allow record
// is committed first, and only then does do change state, so nothing is
// ever done unaudited. If do fails after all (a lost race), a second
// record says so.
func (a *Authority) act(ctx context.Context, rec audit.Record, check func(*audit.Record) error, do func() error) error {
	if err := check(&rec); err != nil {
		if reason := ReasonOf(err); reason != "" && reason != ReasonAuditUnavailable {
			rec.Decision, rec.Reason = audit.Deny, reason
			if aerr := a.commit(ctx, rec); aerr != nil {
				return aerr
			}
		}
		return err
	}
	rec.Decision = audit.Allow
	if err := a.commit(ctx, rec); err != nil {
		return err
	}
	if err := do(); err != nil {
		failed := rec
		failed.Decision, failed.Reason = audit.Deny, fmt.Sprintf("failed after approval: %s", reasonOr(err))
		if aerr := a.commit(ctx, failed); aerr != nil {
			a.cfg.Log.Error("audit: cannot record a failed operation", "action", rec.Action, "err", aerr)
		}
		return err
	}
	return nil
}

func reasonOr(err error) string {
	if r := ReasonOf(err); r != "" {
		return r
	}
	return "internal error"
}

// Request describes an admin API request for the audit log.
type Request struct {
	Method, Path string
	Status       int
	Reason       string // refusal reason; empty when allowed
}

// RecordRequest commits the record of an admin API request that changes
// nothing (a read), or of one refused before any operation ran (a bad
// token, a missing scope). by may be zero for an unauthenticated caller.
// An error means the request must be refused: nothing is served unaudited.
func (a *Authority) RecordRequest(ctx context.Context, by Actor, req Request) error {
	rec := a.event(by, "admin.request")
	rec.Method, rec.Path, rec.Status = req.Method, req.Path, req.Status
	rec.Decision, rec.Reason = audit.Allow, req.Reason
	if req.Reason != "" {
		rec.Decision = audit.Deny
	}
	return a.commit(ctx, rec)
}

// maxAuditField caps what a record keeps of any client-controlled field (a
// request path, a name): a record must encode whatever the client sent,
// or an oversized path would refuse the request instead of recording it.
const maxAuditField = 1024

// clean makes every text field of rec valid UTF-8 within maxAuditField
// bytes, marking what it cut with "…".
func clean(rec *audit.Record) {
	for _, f := range []*string{&rec.Actor, &rec.ActorName, &rec.Action, &rec.Contractor, &rec.TokenID,
		&rec.Service, &rec.Method, &rec.Path, &rec.Reason, &rec.Source} {
		v := strings.ToValidUTF8(*f, "\uFFFD")
		if len(v) > maxAuditField {
			v = strings.ToValidUTF8(v[:maxAuditField-len("…")], "") + "…"
		}
		*f = v
	}
}
