package access

import (
	"context"
	"errors"
	"sync"
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
}

// Unused lists live contractor tokens not used for idle, and scopes of
// live grants (older than idle) that no token of the contractor used
// within idle: both are candidates for revocation. The two halves are
// read concurrently, on separate read connections.
func (a *Authority) Unused(ctx context.Context, idle time.Duration) ([]store.UnusedToken, []UnusedScope, error) {
	if idle <= 0 {
		return nil, nil, refuse(ReasonInvalid, "--idle must be a positive duration, got %v", idle)
	}
	now := a.now()
	cutoff := now.Add(-idle)
	var (
		toks []store.UnusedToken
		terr error
		wg   sync.WaitGroup
	)
	wg.Go(func() { toks, terr = a.cfg.Store.UnusedTokens(ctx, cutoff, now) })
	scopes, serr := a.unusedScopes(ctx, cutoff, now)
	wg.Wait()
	if err := errors.Join(terr, serr); err != nil {
		return nil, nil, err
	}
	return toks, scopes, nil
}

func (a *Authority) unusedScopes(ctx context.Context, cutoff, now time.Time) ([]UnusedScope, error) {
	grants, err := a.cfg.Store.Grants(ctx, store.GrantFilter{LiveAt: now})
	if err != nil {
		return nil, err
	}
	uses, err := a.cfg.Store.ScopeUses(ctx, cutoff)
	if err != nil {
		return nil, err
	}
	// The scopes each contractor's tokens used within the window, parsed once.
	used := make(map[string][]scope.Scope)
	for _, u := range uses {
		if s, err := scope.Parse(u.Scope); err == nil {
			used[u.Contractor] = append(used[u.Contractor], s)
		}
	}
	var out []UnusedScope
	for _, g := range grants {
		if g.CreatedAt.After(cutoff) {
			continue
		}
		for _, gs := range g.Scopes {
			if !anyCovered(gs, used[g.Contractor]) {
				out = append(out, UnusedScope{Contractor: g.Contractor, GrantID: g.ID, Scope: gs})
			}
		}
	}
	return out, nil
}

// anyCovered reports whether grant scope gs covers one of the used scopes.
func anyCovered(gs string, used []scope.Scope) bool {
	if len(used) == 0 {
		return false
	}
	g, err := scope.Parse(gs)
	if err != nil {
		return false
	}
	for _, u := range used {
		if g.Covers(u) {
			return true
		}
	}
	return false
}
