package access

import (
	"context"
	"fmt"
	"slices"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

// SweeperName is the actor (token id and name) of the audit records of
// what the server does by itself: idle reaping, engagement ends, rotation
// ends and expiry notices (package sweeper).
const SweeperName = "latchkey-sweeper"

// sweeperActor is the Actor of the sweeper's actions.
var sweeperActor = Actor{TokenID: SweeperName, Name: SweeperName}

// ClaimStale is how old a sweeper claim must be before another instance
// may take it over: its taker stopped between claim and change.
const ClaimStale = 10 * time.Minute

// Sweeper actions are safe on several replicas sharing a store: each first
// claims its subject in the store (a conditional write that exactly one
// replica wins), then re-reads the subject and decides, then commits its
// audit record, and only then changes state with a conditional store
// write. A replica that loses the claim writes nothing, not even an audit
// record. Each returns whether it acted.

// sweepAct runs one sweeper action: claim, check (false: nothing to do,
// nothing recorded), audit, do.
func (a *Authority) sweepAct(ctx context.Context, rec audit.Record, claim func() (bool, error),
	check func(*audit.Record) (bool, error), do func() error) (bool, error) {
	won, err := claim()
	if err != nil || !won {
		return false, err
	}
	if ok, err := check(&rec); err != nil || !ok {
		return false, err
	}
	rec.Decision = audit.Allow
	if err := a.commit(ctx, rec); err != nil {
		return false, err
	}
	if err := do(); err != nil {
		failed := rec
		failed.Decision, failed.Reason = audit.Deny, fmt.Sprintf("failed after approval: %s", reasonOr(storeErr(err, "subject")))
		if aerr := a.commit(ctx, failed); aerr != nil {
			a.cfg.Log.Error("audit: cannot record a failed sweep action", "action", rec.Action, "err", aerr)
		}
		return false, err
	}
	return true, nil
}

// claimer returns the claim of key by holder at now.
func (a *Authority) claimer(ctx context.Context, key, holder string, now time.Time) func() (bool, error) {
	return func() (bool, error) {
		return a.cfg.Store.Claim(ctx, key, holder, now, now.Add(-ClaimStale))
	}
}

// IdleToken is a live contractor token unused past its idle timeout, it
// and every live token derived from it.
type IdleToken struct {
	ID       string
	LastUsed time.Time // last use (or creation if never used) of it or of a live token derived from it
	Idle     Setting   // the effective idle timeout and where it is set
}

// IdleTokens lists the live contractor tokens unused for at least their
// effective idle timeout at now, where a token's last use is the latest
// use (or creation) of it and of its live derived tokens: a derived
// token's use updates only its own record, and a parent whose children
// are in use (a contractor handing narrower tokens to CI jobs) is in use.
// A token derived from another listed token is left out: it is revoked
// with that one.
func (a *Authority) IdleTokens(ctx context.Context, now time.Time) ([]IdleToken, error) {
	ps, err := a.cfg.Store.Policies(ctx)
	if err != nil {
		return nil, err
	}
	var shortest time.Duration
	for _, p := range ps {
		if p.Idle > 0 && (shortest == 0 || p.Idle < shortest) {
			shortest = p.Idle
		}
	}
	if shortest == 0 {
		return nil, nil // no level sets an idle timeout
	}
	cands, err := a.cfg.Store.UnusedTokens(ctx, now.Add(-shortest), now)
	if err != nil {
		return nil, err
	}
	var out []IdleToken
	under := map[string]bool{} // derived from a listed token
	for _, t := range cands {
		eff := Resolve(a.cfg.MaxTTL, ps, scopeServices(t.Scopes), t.Contractor)
		last := lastUse(t.LastUsedAt, t.CreatedAt)
		if eff.Idle.Value == 0 || now.Before(last.Add(eff.Idle.Value)) {
			continue
		}
		last, kids, err := a.treeLastUse(ctx, t.ID, last, now)
		if err != nil {
			return nil, err
		}
		if now.Before(last.Add(eff.Idle.Value)) {
			continue
		}
		for _, k := range kids {
			under[k.ID] = true
		}
		out = append(out, IdleToken{ID: t.ID, LastUsed: last, Idle: eff.Idle})
	}
	return slices.DeleteFunc(out, func(t IdleToken) bool { return under[t.ID] }), nil
}

// lastUse is the later of a token's last use and its creation.
func lastUse(used, created time.Time) time.Time {
	if used.After(created) {
		return used
	}
	return created
}

// treeLastUse returns the later of last (token id's own last use) and the
// last use of each token derived from id that is live at now, and those
// descendants.
func (a *Authority) treeLastUse(ctx context.Context, id string, last, now time.Time) (time.Time, []store.Token, error) {
	kids, err := a.cfg.Store.DerivedTokens(ctx, id)
	if err != nil {
		return time.Time{}, nil, err
	}
	kids = slices.DeleteFunc(kids, func(k store.Token) bool { return !k.Active(now) })
	for _, k := range kids {
		if l := lastUse(k.LastUsedAt, k.CreatedAt); l.After(last) {
			last = l
		}
	}
	return last, kids, nil
}

// ReapIdle revokes token id, reason idle, with every token derived from
// it, if it is still live and it and its live derived tokens have been
// unused for its effective idle timeout at now (see IdleTokens). holder
// names the claiming instance. The claim is per idle period (keyed by the
// last use of the tree), so a token used again and idle again is reaped
// again, once.
func (a *Authority) ReapIdle(ctx context.Context, holder, id string, now time.Time) (bool, error) {
	t, err := a.cfg.Store.Token(ctx, id)
	if err != nil {
		return false, storeErr(err, "token "+id)
	}
	last, _, err := a.treeLastUse(ctx, id, lastUse(t.LastUsedAt, t.CreatedAt), now)
	if err != nil {
		return false, err
	}
	key := fmt.Sprintf("idle:%s:%d", id, last.UnixMilli())
	rec := a.event(sweeperActor, "token.revoke")
	rec.TokenID, rec.Contractor = id, t.Contractor
	return a.sweepAct(ctx, rec, a.claimer(ctx, key, holder, now), func(r *audit.Record) (bool, error) {
		if t, err = a.cfg.Store.Token(ctx, id); err != nil {
			return false, err
		}
		if !t.Active(now) || t.Admin {
			return false, nil
		}
		eff, err := a.policyFor(ctx, t.Contractor, t.Scopes)
		if err != nil {
			return false, err
		}
		last, _, err := a.treeLastUse(ctx, id, lastUse(t.LastUsedAt, t.CreatedAt), now)
		if err != nil {
			return false, err
		}
		if eff.Idle.Value == 0 || now.Before(last.Add(eff.Idle.Value)) {
			return false, nil
		}
		r.Reason = fmt.Sprintf("%s: unused since %s, idle timeout %s set by the %s policy", store.RevokeIdle,
			last.Format(time.RFC3339), timespec.Format(eff.Idle.Value), eff.Idle.From)
		return true, nil
	}, func() error {
		return a.sweepRevoke(ctx, t, store.RevokeIdle)
	})
}

// sweepRevoke revokes t for reason as the sweeper, with every token
// derived from it (as RevokeFor does), and tells caches and notifications.
func (a *Authority) sweepRevoke(ctx context.Context, t store.Token, reason string) error {
	kids, err := a.revokeTree(ctx, sweeperActor, t, reason)
	if err != nil {
		return err
	}
	a.revoked(ctx, sweeperActor, t, reason, kids)
	return nil
}

// FinishRotation revokes token id, reason rotated, if a successor names
// it as Parent, it is not revoked, and its grace (its expiry, moved by the
// rotation) has passed at now.
func (a *Authority) FinishRotation(ctx context.Context, holder, id string, now time.Time) (bool, error) {
	var t store.Token
	rec := a.event(sweeperActor, "token.revoke")
	rec.TokenID = id
	return a.sweepAct(ctx, rec, a.claimer(ctx, "rotated:"+id, holder, now), func(r *audit.Record) (bool, error) {
		var err error
		if t, err = a.cfg.Store.Token(ctx, id); err != nil {
			return false, err
		}
		r.Contractor = t.Contractor
		if !t.RevokedAt.IsZero() || now.Before(t.ExpiresAt) {
			return false, nil
		}
		r.Reason = fmt.Sprintf("%s: rotation grace ended at %s", store.RevokeRotated, t.ExpiresAt.Format(time.RFC3339))
		return true, nil
	}, func() error {
		return a.sweepRevoke(ctx, t, store.RevokeRotated)
	})
}

// EndEngagement revokes every live token (reason engagement_ended) and
// grant of contractor name and disables it, if its engagement has ended
// at now and it is not disabled yet. It returns what it revoked.
func (a *Authority) EndEngagement(ctx context.Context, holder, name string, now time.Time) (res store.OffboardResult, done bool, err error) {
	var live []store.Token
	rec := a.event(sweeperActor, "contractor.engagement_end")
	rec.Contractor = name
	done, err = a.sweepAct(ctx, rec, a.claimer(ctx, "engagement:"+name, holder, now), func(r *audit.Record) (bool, error) {
		c, err := a.cfg.Store.Contractor(ctx, name)
		if err != nil {
			return false, err
		}
		if c.Disabled || now.Before(c.Until) {
			return false, nil
		}
		if live, err = a.cfg.Store.Tokens(ctx, store.TokenFilter{Contractor: name}); err != nil {
			return false, err
		}
		r.Reason = fmt.Sprintf("%s: engagement ended at %s; revoking its tokens and grants and disabling it",
			store.RevokeEngagementEnd, c.Until.Format(time.RFC3339))
		return true, nil
	}, func() error {
		res, err = a.cfg.Store.EndEngagement(ctx, name, SweeperName, now)
		return err
	})
	if !done {
		return res, false, err
	}
	a.cache.dropContractor(name)
	for _, t := range live {
		a.invalidate(t.ID)
		if t.RevokedAt.IsZero() {
			a.emit(ctx, tokenEvent(EventTokenRevoked, Actor{}, t, store.RevokeEngagementEnd))
		}
	}
	return res, true, nil
}

// NoticeExpiry sends the expiring-soon notice (EventTokenExpiring) of
// token id once: the claim is the token's expiry-notice mark, which
// exactly one replica sets. The notice is audited (token.expiry_notice)
// before the event is emitted; a token no longer active is not noticed.
func (a *Authority) NoticeExpiry(ctx context.Context, id string, now time.Time) (bool, error) {
	var t store.Token
	rec := a.event(sweeperActor, "token.expiry_notice")
	rec.TokenID = id
	return a.sweepAct(ctx, rec, func() (bool, error) {
		return a.cfg.Store.ClaimExpiryNotice(ctx, id, now)
	}, func(r *audit.Record) (bool, error) {
		var err error
		if t, err = a.cfg.Store.Token(ctx, id); err != nil {
			return false, err
		}
		r.Contractor = t.Contractor
		if !t.Active(now) {
			return false, nil
		}
		r.Reason = fmt.Sprintf("expiring soon: expires at %s", t.ExpiresAt.Format(time.RFC3339))
		return true, nil
	}, func() error {
		a.emit(ctx, tokenEvent(EventTokenExpiring, Actor{}, t, ""))
		return nil
	})
}
