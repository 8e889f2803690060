package access

import (
	"context"
	"time"

	"latchkey/internal/store"
)

// Event types: what notifications (package notify) are sent about.
const (
	EventTokenIssued     = "token.issued"
	EventTokenExpiring   = "token.expiring_soon"
	EventTokenRevoked    = "token.revoked" // Reason: a store.Revoke* word
	EventTokenIdleReaped = "token.idle_reaped"
	EventLeakReported    = "token.leak_reported"
	EventAccessRequested = "access.requested"
	EventAccessApproved  = "access.approved"
	EventAccessDenied    = "access.denied"
)

// Event is something that happened, for notifications. It is emitted
// after the change is stored and audited; it never carries a secret.
type Event struct {
	Type       string
	Time       time.Time
	Actor      string // token id of who did it, "" for the server itself
	TokenID    string
	Contractor string
	Scopes     []string
	ExpiresAt  time.Time // the token's expiry, when about a token
	Reason     string    // why: a revocation reason, a request's reason
	RequestID  string    // the access request, for access.* events
}

// emit hands ev to Config.Events, if set. Events is called synchronously
// and must not block for long: a notifier queues the event and returns.
func (a *Authority) emit(ctx context.Context, ev Event) {
	if a.cfg.Events == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = a.now()
	}
	a.cfg.Events(context.WithoutCancel(ctx), ev)
}

// tokenEvent is an event about token t.
func tokenEvent(typ string, by Actor, t store.Token, reason string) Event {
	return Event{Type: typ, Actor: by.TokenID, TokenID: t.ID, Contractor: t.Contractor,
		Scopes: t.Scopes, ExpiresAt: t.ExpiresAt, Reason: reason}
}
