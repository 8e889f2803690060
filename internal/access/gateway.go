package access

import (
	"context"
	"errors"

	"latchkey/internal/audit"
	"latchkey/internal/store"
)

// ActionGatewayRequest is the audit action of every gateway request.
const ActionGatewayRequest = "gateway.request"

// GatewayRequest describes one gateway request for the audit log. No
// field may hold a secret: the token appears only by its public id.
type GatewayRequest struct {
	TokenID    string // token presented, if its id could be read; "" otherwise
	Contractor string // owner of the token, once authenticated
	Service    string // service name from the gateway path
	Method     string
	Path       string // service-relative escaped path, as authorized or as sent
	Source     string // client address
	// Status is the HTTP status the gateway answered a denial with, or 0
	// for an allowed request: it is recorded before forwarding, when the
	// upstream's status is not yet known.
	Status int
	// Reason is the denial reason word; "" means allowed.
	Reason string
}

// RecordGatewayRequest commits the audit record of a gateway request,
// allowed (req.Reason == "") or denied. The gateway calls it before it
// forwards or answers; an error (reason audit_unavailable) means the
// request must be refused and nothing forwarded.
func (a *Authority) RecordGatewayRequest(ctx context.Context, req GatewayRequest) error {
	rec := audit.Record{
		Actor: req.TokenID, ActorName: req.Contractor, Action: ActionGatewayRequest,
		Contractor: req.Contractor, TokenID: req.TokenID, Service: req.Service,
		Method: req.Method, Path: req.Path, Status: req.Status,
		Decision: audit.Allow, Reason: req.Reason, Source: req.Source,
	}
	if req.Reason != "" {
		rec.Decision = audit.Deny
	}
	return a.commit(ctx, rec)
}

// Use counts one use of tok, which has just been authenticated, if it has
// a use limit: at once in the store, so no replica can allow more uses
// than the limit. A token that has used all of its uses is refused with
// reason token_expired (it has expired by use). Tokens without a limit
// need nothing here: the usage recorder counts their uses in batches.
// It reports whether the use was counted.
func (a *Authority) Use(ctx context.Context, tok store.Token) (counted bool, err error) {
	if tok.MaxUses == 0 {
		return false, nil
	}
	_, err = a.cfg.Store.ConsumeUse(ctx, tok.ID, a.now())
	switch {
	case errors.Is(err, store.ErrExhausted):
		return false, refuse(ReasonExpired, "token %s has used all %d of its uses", tok.ID, tok.MaxUses)
	case errors.Is(err, store.ErrNotFound):
		return false, refuse(ReasonUnknown, "unknown token")
	case err != nil:
		return false, err
	}
	return true, nil
}
