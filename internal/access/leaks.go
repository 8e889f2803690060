package access

import (
	"context"
	"errors"
	"fmt"

	"latchkey/internal/audit"
	"latchkey/internal/store"
	"latchkey/internal/token"
)

// Leak is what ReportLeak found: the reported token (its record, never
// its secret) and whether this report revoked it (false: it was already
// revoked).
type Leak struct {
	Token   store.Token
	Revoked bool
	// Derived lists the ids of the tokens derived from it that were
	// revoked with it.
	Derived []string
}

// ReportLeak revokes the token whose text was found in the wild (reason
// store.RevokeLeaked), with everything derived from it, and emits
// EventLeakReported so that its sponsor hears of it. Whoever holds the
// text holds the token's power, so by needs no scope over it: a leaked
// admin token is revoked too. The token is recognised like Authenticate
// does (its hash compared in constant time), but its expiry, revocation
// and contractor do not matter: an expired or already revoked token is
// reported (and announced) all the same.
//
// A text that is not a latchkey token is refused with token_malformed; one
// that is no token of this server (unknown id or wrong secret) with
// token_unknown. Each report is audited, refusals included; the text is
// never recorded, only the token id.
func (a *Authority) ReportLeak(ctx context.Context, by Actor, text string) (Leak, error) {
	rec := a.event(by, "token.leak")
	var l Leak
	err := a.act(ctx, rec, func(r *audit.Record) error {
		t, err := a.leaked(ctx, text)
		if err != nil {
			return err
		}
		l.Token, l.Revoked = t, t.RevokedAt.IsZero()
		r.TokenID, r.Contractor, r.Reason = t.ID, t.Contractor, store.RevokeLeaked
		if !l.Revoked {
			r.Reason += ": already revoked (" + t.RevokedReason + ")"
		}
		return nil
	}, func() error {
		if !l.Revoked {
			return nil
		}
		kids, err := a.revokeTree(ctx, by, l.Token, store.RevokeLeaked)
		if errors.Is(err, store.ErrRevoked) {
			l.Revoked = false // revoked meanwhile: reported all the same
			return nil
		}
		for _, k := range kids {
			l.Derived = append(l.Derived, k.ID)
		}
		if err == nil {
			a.revoked(ctx, by, l.Token, store.RevokeLeaked, kids)
		}
		return err
	})
	if err != nil {
		return Leak{}, err
	}
	a.emit(ctx, tokenEvent(EventLeakReported, by, l.Token, store.RevokeLeaked))
	return l, nil
}

// leaked finds the token whose text was reported.
func (a *Authority) leaked(ctx context.Context, text string) (store.Token, error) {
	p, err := token.Parse(text)
	if err != nil {
		return store.Token{}, &Error{Reason: ReasonMalformed, Msg: "not a latchkey token", Err: err}
	}
	t, err := a.cfg.Store.Token(ctx, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, refuse(ReasonUnknown, "unknown token")
	}
	if err != nil {
		return store.Token{}, err
	}
	// As in Authenticate: the prefix is covered by the checksum, not the hash.
	if !token.Verify(p, t.Hash) || (p.Kind == token.Admin) != t.Admin {
		return store.Token{}, refuse(ReasonUnknown, "unknown token")
	}
	return t, nil
}

// RecordLeakReport commits the record of a signed leak report of n
// entries, accepted under key id keyID, before its entries are acted on.
func (a *Authority) RecordLeakReport(ctx context.Context, by Actor, keyID string, n int) error {
	rec := a.event(by, "leak.report")
	rec.Decision, rec.Reason = audit.Allow, fmt.Sprintf("signed report of %d token(s), key %s", n, keyID)
	return a.commit(ctx, rec)
}
