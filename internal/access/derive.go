package access

import (
	"context"
	"errors"
	"fmt"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/store"
)

// Limits on self-service derivation. They bound how far a contractor can
// grow the token tree that one revocation must walk; they are checked
// before the write, so concurrent derivations may pass them by a few.
const (
	// maxDeriveDepth is how many links a chain of derived tokens may have
	// (a child of a child of ... of an issued token).
	maxDeriveDepth = 4
	// maxLiveDerived is how many live (unrevoked, unexpired) tokens may
	// descend from one issued token: the whole tree, not each of its links.
	maxLiveDerived = 100
)

// DeriveRequest is a contractor's request for a narrower child of its own
// token. Every field narrows: see Derive.
type DeriveRequest struct {
	Scopes  []string      // each covered by the parent's scopes
	TTL     time.Duration // mandatory; cut so that the child ends no later than the parent
	CIDRs   []string      // within the parent's; default the parent's
	MaxUses int64         // required if the parent has a use limit: carved out of what is left
	Note    string
}

// Derive issues a child of the caller's own contractor token (by.TokenID)
// that holds no more than its parent: scopes each covered by the parent's
// (and, like any token, by the contractor's live grants today), an expiry
// no later than the parent's (a longer TTL is cut to the parent's expiry), sources within the parent's, and, if the
// parent has a use limit, uses taken from the parent's remaining uses (the
// parent's count grows by the child's limit, so deriving never multiplies
// uses). A child may derive in turn, up to maxDeriveDepth links: each link
// only narrows, and revoking any token revokes everything derived from it
// (see RevokeFor), so allowing chains gives no more power and lets a
// contractor hand a narrower token to a sub-process of a sub-process.
// Admin tokens cannot derive (they issue with Issue).
func (a *Authority) Derive(ctx context.Context, by Actor, req DeriveRequest) (iss Issued, err error) {
	rec := a.event(by, "token.derive")
	err = a.act(ctx, rec, func(r *audit.Record) error {
		parent, err := a.deriveParent(ctx, by.TokenID)
		if err != nil {
			return err
		}
		r.Contractor = parent.Contractor
		t, err := a.derivedToken(ctx, parent, req)
		if err != nil {
			return err
		}
		iss, err = a.generate(t)
		r.TokenID, r.Reason = iss.Token.ID, describe(iss.Token)+", derived from "+parent.ID
		return err
	}, func() error {
		err := a.cfg.Store.CreateDerivedToken(ctx, iss.Token)
		if errors.Is(err, store.ErrExhausted) {
			return &Error{Reason: ReasonForbidden, Msg: "your token has fewer uses left than --uses asks for", Err: err}
		}
		return storeErr(err, "your token")
	})
	if err != nil {
		return Issued{}, err
	}
	a.emit(ctx, tokenEvent(EventTokenIssued, by, iss.Token, ""))
	return iss, nil
}

// deriveParent reads the caller's own token and refuses one that may not
// derive: an admin token, a revoked or expired one, or one at the end of a
// chain of maxDeriveDepth links or in a tree whose root (the issued token
// it descends from, or itself) has maxLiveDerived live descendants.
func (a *Authority) deriveParent(ctx context.Context, id string) (store.Token, error) {
	p, err := a.Token(ctx, id)
	if err != nil {
		return store.Token{}, err
	}
	switch {
	case p.Admin:
		return store.Token{}, refuse(ReasonForbidden, "an admin token cannot derive tokens: issue one with latchkey token issue")
	case !p.RevokedAt.IsZero():
		return store.Token{}, &Error{Reason: ReasonRevoked, Msg: fmt.Sprintf("token %s is revoked", p.ID), Err: store.ErrRevoked}
	case !a.now().Before(p.ExpiresAt):
		return store.Token{}, refuse(ReasonExpired, "token %s has expired", p.ID)
	case !holdsServiceScope(p.Scopes):
		return store.Token{}, refuse(ReasonForbidden, "token %s holds no service scope to derive from (a request-only token cannot derive)", p.ID)
	}
	up := p
	for depth := 0; up.DerivedFrom != ""; depth++ {
		if depth+1 >= maxDeriveDepth {
			return store.Token{}, refuse(ReasonForbidden, "token %s ends a chain of %d derived tokens: derive from one nearer the issued token", p.ID, maxDeriveDepth)
		}
		if up, err = a.cfg.Store.Token(ctx, up.DerivedFrom); err != nil {
			return store.Token{}, fmt.Errorf("parent of a derived token: %w", err)
		}
	}
	// up is the root of p's tree: the limit holds for the whole tree, which
	// one revocation of the root walks, not for each of its tokens.
	live, err := a.liveDerived(ctx, up.ID)
	if err != nil {
		return store.Token{}, err
	}
	if live >= maxLiveDerived {
		return store.Token{}, refuse(ReasonForbidden, "the tree of token %s (rooted at %s) already has %d live derived tokens (the maximum): revoke some first", p.ID, up.ID, live)
	}
	return p, nil
}

// liveDerived counts the tokens derived from root, directly or not, that
// are live now (unrevoked and unexpired): an expired child no longer
// counts against the limit, though a revocation still revokes it.
func (a *Authority) liveDerived(ctx context.Context, root string) (int, error) {
	kids, err := a.cfg.Store.DerivedTokens(ctx, root)
	if err != nil {
		return 0, err
	}
	now, n := a.now(), 0
	for _, k := range kids {
		if k.Active(now) {
			n++
		}
	}
	return n, nil
}

// derivedToken checks a derive request against its parent and the rules
// of any contractor token, and returns the child's record (no id yet).
func (a *Authority) derivedToken(ctx context.Context, parent store.Token, req DeriveRequest) (store.Token, error) {
	now := a.now()
	// The child is held to the policy of its own scopes (no approval:
	// it only narrows a token already issued).
	eff, err := a.policyFor(ctx, parent.Contractor, req.Scopes)
	if err != nil {
		return store.Token{}, err
	}
	if req.TTL == 0 {
		req.TTL = eff.DefaultTTL.Value
	}
	if err := checkTTL(req.TTL, eff.MaxTTL); err != nil {
		return store.Token{}, err
	}
	t, err := tokenFields(IssueRequest{Contractor: parent.Contractor, Scopes: req.Scopes, CIDRs: req.CIDRs, MaxUses: req.MaxUses, Note: req.Note})
	if err != nil {
		return store.Token{}, err
	}
	t.ExpiresAt, t.CreatedAt, t.CreatedBy, t.DerivedFrom = now.Add(req.TTL), now, parent.ID, parent.ID
	// A child is bound to its parent's key: narrowing never unbinds.
	t.CnfJKT, t.CnfX5T = parent.CnfJKT, parent.CnfX5T
	if t.ExpiresAt.After(parent.ExpiresAt) {
		// Like a Vault child token (and an admin token, see checkAdmin):
		// capped at the parent's expiry, which the reply shows.
		t.ExpiresAt = parent.ExpiresAt
	}
	if err := narrowerSources(parent.CIDRs, &t); err != nil {
		return store.Token{}, err
	}
	if left := parent.MaxUses - parent.Uses; parent.MaxUses > 0 {
		switch {
		case t.MaxUses == 0:
			return store.Token{}, refuse(ReasonInvalid, "your token has a use limit (%d left): the derived token needs --uses", max(left, 0))
		case t.MaxUses > left:
			return store.Token{}, refuse(ReasonForbidden, "--uses %d is more than the %d uses your token has left", t.MaxUses, max(left, 0))
		}
	}
	if err := a.checkContractor(ctx, &t, now); err != nil {
		return store.Token{}, err
	}
	return t, narrowerScopes(parent.Scopes, t.Scopes)
}

// narrowerScopes requires each requested scope to be covered by one of
// the parent's.
func narrowerScopes(parent, want []string) error {
	held, err := scope.ParseSet(parent)
	if err != nil {
		return fmt.Errorf("stored scopes of the parent token: %w", err)
	}
	set, err := parseScopes(want)
	if err != nil {
		return err
	}
	for _, s := range set {
		if !held.Covers(s) {
			return &Error{Reason: ReasonScopeNotCovered, Err: scope.ErrNotCovered,
				Msg: fmt.Sprintf("scope %q is not covered by your own token's scopes", s)}
		}
	}
	return nil
}

// revokeTree revokes t for reason and every token derived from it: it
// commits one audit record per live descendant (with the caller's record
// for t already committed by act), then revokes them all in one store
// transaction. It returns the descendants revoked. A token derived between
// the listing and the transaction is revoked with the rest and recorded
// just after: its parent's revocation was recorded before it.
func (a *Authority) revokeTree(ctx context.Context, by Actor, t store.Token, reason string) ([]store.Token, error) {
	kids, err := a.cfg.Store.DerivedTokens(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	listed := make(map[string]store.Token, len(kids))
	recs := make([]audit.Record, 0, len(kids))
	for _, k := range kids {
		listed[k.ID] = k
		recs = append(recs, a.cascadeRecord(by, k, t.ID))
	}
	if err := a.commitAll(ctx, recs); err != nil {
		return nil, err
	}
	ids, err := a.cfg.Store.RevokeTokenTree(ctx, t.ID, by.TokenID, reason, a.now())
	if err != nil {
		return nil, storeErr(err, fmt.Sprintf("token %s", t.ID))
	}
	revoked := make([]store.Token, 0, len(ids))
	var late []audit.Record
	for _, id := range ids {
		k, ok := listed[id]
		if !ok {
			k = store.Token{ID: id, Contractor: t.Contractor}
			late = append(late, a.cascadeRecord(by, k, t.ID))
		}
		revoked = append(revoked, k)
	}
	if err := a.commitAll(ctx, late); err != nil {
		a.cfg.Log.Error("audit: cannot record tokens revoked with their parent", "parent", t.ID, "err", err)
	}
	return revoked, nil
}

// cascadeRecord is the audit record of token k revoked because root, from
// which it derives, was.
func (a *Authority) cascadeRecord(by Actor, k store.Token, root string) audit.Record {
	rec := a.event(by, "token.revoke")
	rec.TokenID, rec.Contractor, rec.Decision = k.ID, k.Contractor, audit.Allow
	rec.Reason = store.RevokeParent + ": derived from " + root
	return rec
}

// revoked drops t and its revoked descendants from every cache and emits
// their token.revoked events.
func (a *Authority) revoked(ctx context.Context, by Actor, t store.Token, reason string, kids []store.Token) {
	a.invalidate(t.ID)
	for _, k := range kids {
		a.invalidate(k.ID)
	}
	a.emit(ctx, tokenEvent(revokedEvent(reason), by, t, reason))
	for _, k := range kids {
		a.emit(ctx, tokenEvent(EventTokenRevoked, by, k, store.RevokeParent))
	}
}

// commitAll appends recs in one commit, stamped now; nothing for none.
func (a *Authority) commitAll(ctx context.Context, recs []audit.Record) error {
	if a.cfg.Audit == nil || len(recs) == 0 {
		return nil
	}
	now := a.cfg.Now().UTC()
	for i := range recs {
		recs[i].Time = now
		clean(&recs[i])
	}
	if _, err := a.cfg.Audit.Append(ctx, recs...); err != nil {
		a.cfg.Log.Error("audit append failed: refusing the operation", "action", recs[0].Action, "err", err)
		return &Error{Reason: ReasonAuditUnavailable, Msg: "the audit log cannot be written: operation refused", Err: err}
	}
	return nil
}

// withinParent cuts the expiry of a derived token's successor (a
// rotation keeps DerivedFrom) to its parent's: a derived token never
// outlives the token it was derived from.
func (a *Authority) withinParent(ctx context.Context, t *store.Token) error {
	if t.DerivedFrom == "" {
		return nil
	}
	p, err := a.cfg.Store.Token(ctx, t.DerivedFrom)
	if err != nil {
		return fmt.Errorf("parent of a derived token: %w", err)
	}
	if !p.RevokedAt.IsZero() {
		return &Error{Reason: ReasonRevoked, Msg: fmt.Sprintf("token %s was derived from %s, which is revoked", t.Parent, p.ID), Err: store.ErrRevoked}
	}
	if t.ExpiresAt.After(p.ExpiresAt) {
		t.ExpiresAt = p.ExpiresAt
	}
	return nil
}

// endDerived makes the tokens derived from t that expire after end
// expire at end, recording each first; a rotation ends t at end.
func (a *Authority) endDerived(ctx context.Context, by Actor, t store.Token, end time.Time) error {
	kids, err := a.cfg.Store.DerivedTokens(ctx, t.ID)
	if err != nil {
		return err
	}
	var recs []audit.Record
	listed := map[string]bool{}
	for _, k := range kids {
		if k.ExpiresAt.After(end) {
			listed[k.ID] = true
			recs = append(recs, a.endRecord(by, k.ID, t, end))
		}
	}
	if err := a.commitAll(ctx, recs); err != nil {
		return err
	}
	ids, err := a.cfg.Store.EndDerivedTokens(ctx, t.ID, end)
	if err != nil {
		return err
	}
	var late []audit.Record
	for _, id := range ids {
		a.invalidate(id)
		if !listed[id] {
			late = append(late, a.endRecord(by, id, t, end))
		}
	}
	if err := a.commitAll(ctx, late); err != nil {
		a.cfg.Log.Error("audit: cannot record tokens ended with their parent", "parent", t.ID, "err", err)
	}
	return nil
}

func (a *Authority) endRecord(by Actor, id string, parent store.Token, end time.Time) audit.Record {
	rec := a.event(by, "token.end")
	rec.TokenID, rec.Contractor, rec.Decision = id, parent.Contractor, audit.Allow
	rec.Reason = fmt.Sprintf("ends %s with %s, which it derives from", end.Format(time.RFC3339), parent.ID)
	return rec
}

// holdsServiceScope reports whether scopes include a gateway scope: a
// token without one (an access-request-only token) has nothing to narrow.
// Deny by default: a scope that does not parse counts as none.
func holdsServiceScope(scopes []string) bool {
	for _, raw := range scopes {
		if s, err := scope.Parse(raw); err == nil && !s.IsAdmin() {
			return true
		}
	}
	return false
}
