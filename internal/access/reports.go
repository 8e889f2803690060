package access

import (
	"context"
	"time"

	"latchkey/internal/scope"
	"latchkey/internal/store"
)

// ActiveReport lists who holds live tokens, and until when.
func (a *Authority) ActiveReport(ctx context.Context) ([]store.ActiveRow, error) {
	return a.cfg.Store.ActiveReport(ctx, a.now())
}

// AccessReport lists what each contractor (or one) can touch now.
func (a *Authority) AccessReport(ctx context.Context, contractor string) ([]store.AccessRow, error) {
	if contractor != "" {
		if _, err := a.Contractor(ctx, contractor); err != nil {
			return nil, err
		}
	}
	return a.cfg.Store.AccessReport(ctx, contractor, a.now())
}

// UnusedScope is a scope of a live grant that no token of the contractor
// used within the idle window.
type UnusedScope struct {
	Contractor string
	GrantID    int64
	Scope      string
	LastUsedAt time.Time // last use by a token scope it covers; zero if none recorded
}

// Unused lists live contractor tokens not used for idle, and scopes of
// live grants (older than idle) that no token of the contractor used
// within idle: both are candidates for revocation.
func (a *Authority) Unused(ctx context.Context, idle time.Duration) ([]store.UnusedToken, []UnusedScope, error) {
	if idle <= 0 {
		return nil, nil, refuse(ReasonInvalid, "--idle must be a positive duration, got %v", idle)
	}
	now := a.now()
	cutoff := now.Add(-idle)
	toks, err := a.cfg.Store.UnusedTokens(ctx, cutoff, now)
	if err != nil {
		return nil, nil, err
	}
	scopes, err := a.unusedScopes(ctx, cutoff, now)
	return toks, scopes, err
}

func (a *Authority) unusedScopes(ctx context.Context, cutoff, now time.Time) ([]UnusedScope, error) {
	grants, err := a.cfg.Store.Grants(ctx, store.GrantFilter{LiveAt: now})
	if err != nil {
		return nil, err
	}
	uses, err := a.cfg.Store.ScopeUses(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	byContractor := make(map[string][]store.ScopeUse)
	for _, u := range uses {
		byContractor[u.Contractor] = append(byContractor[u.Contractor], u)
	}
	var out []UnusedScope
	for _, g := range grants {
		if g.CreatedAt.After(cutoff) {
			continue
		}
		for _, s := range g.Scopes {
			last, err := lastUse(s, byContractor[g.Contractor])
			if err != nil {
				return nil, err
			}
			if !last.After(cutoff) {
				out = append(out, UnusedScope{Contractor: g.Contractor, GrantID: g.ID, Scope: s, LastUsedAt: last})
			}
		}
	}
	return out, nil
}

// lastUse is the latest use among the token scopes that grant scope gs covers.
func lastUse(gs string, uses []store.ScopeUse) (time.Time, error) {
	var last time.Time
	if len(uses) == 0 {
		return last, nil
	}
	g, err := scope.Parse(gs)
	if err != nil {
		return last, err
	}
	for _, u := range uses {
		if u.LastUsedAt.After(last) {
			if s, err := scope.Parse(u.Scope); err == nil && g.Covers(s) {
				last = u.LastUsedAt
			}
		}
	}
	return last, nil
}
