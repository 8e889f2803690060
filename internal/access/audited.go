package access

import (
	"context"

	"latchkey/internal/audit"
)

// Audited runs an admin operation whose rules live in another package
// (webhooks, package notify) through the same audit path as this
// package's own: check decides without writing, and a refusal it returns
// (an *Error) is recorded as a denial; otherwise the allow record, with
// action and the detail check returned (in its reason field; never a
// secret), is committed before do changes anything.
func (a *Authority) Audited(ctx context.Context, by Actor, action string, check func() (detail string, err error), do func() error) error {
	rec := a.event(by, action)
	return a.act(ctx, rec, func(r *audit.Record) error {
		detail, err := check()
		r.Reason = detail
		return err
	}, do)
}

// Refuse returns a refusal with a reason word (a Reason* constant) and a
// one-line message, for the checks of Audited.
func Refuse(reason, msg string) error { return &Error{Reason: reason, Msg: msg} }
