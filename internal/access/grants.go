package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

// maxScopes caps the scopes of one grant or token.
const maxScopes = 64

// AddGrant allows a contractor scopes until until (zero: the engagement end).
// Admin scopes cannot be granted to contractors, each named service must
// exist, and the grant may not outlive the engagement.
func (a *Authority) AddGrant(ctx context.Context, by Actor, contractor string, scopes []string, until time.Time) (g store.Grant, err error) {
	rec := a.event(by, "grant.add")
	rec.Contractor = contractor
	err = a.act(ctx, rec, func(r *audit.Record) error {
		g, err = a.newGrant(ctx, by, contractor, scopes, until)
		r.Reason = fmt.Sprintf("scopes %s until %s", strings.Join(g.Scopes, " "), g.ExpiresAt.Format(time.RFC3339))
		return err
	}, func() error {
		g, err = a.cfg.Store.CreateGrant(ctx, g)
		return storeErr(err, fmt.Sprintf("grant for contractor %q", contractor))
	})
	return g, err
}

// newGrant validates a grant without writing.
func (a *Authority) newGrant(ctx context.Context, by Actor, contractor string, scopes []string, until time.Time) (store.Grant, error) {
	now := a.now()
	c, err := a.cfg.Store.Contractor(ctx, contractor)
	if err != nil {
		return store.Grant{}, storeErr(err, fmt.Sprintf("contractor %q", contractor))
	}
	if err := a.usable(c, now); err != nil {
		return store.Grant{}, err
	}
	set, err := a.resourceScopes(ctx, scopes)
	if err != nil {
		return store.Grant{}, err
	}
	eff, err := a.policyFor(ctx, c.Name, set.Strings())
	if err != nil {
		return store.Grant{}, err
	}
	if until.IsZero() {
		until = c.Until
		if m := eff.MaxGrant.Value; m > 0 && until.After(now.Add(m)) {
			until = now.Add(m) // the default end stays within the policy
		}
	}
	until = until.UTC().Truncate(time.Millisecond)
	if m := eff.MaxGrant; m.Value > 0 && until.Sub(now) > m.Value {
		// The length as asked: an end the client computed as "now + 31d"
		// arrives a moment later, when it is 30d23h59m59s away.
		asked := until.Sub(now).Round(time.Second)
		if asked >= time.Hour {
			asked = asked.Round(time.Minute)
		}
		return store.Grant{}, refuse(ReasonGrantTooLong, "grant of %s exceeds the maximum grant length %s set by the %s policy",
			timespec.Format(asked), timespec.Format(m.Value), m.From)
	}
	switch {
	case !until.After(now):
		return store.Grant{}, refuse(ReasonInvalid, "grant end %s is not in the future", until.Format(time.RFC3339))
	case until.After(c.Until):
		return store.Grant{}, refuse(ReasonPastEngagement, "grant end %s is after contractor %q's engagement end %s",
			until.Format(time.RFC3339), c.Name, c.Until.Format(time.RFC3339))
	}
	return store.Grant{Contractor: c.Name, Scopes: set.Strings(), ExpiresAt: until, CreatedAt: now, CreatedBy: by.TokenID}, nil
}

// Grants lists grants, of one contractor if contractor is not empty, only
// live ones if live is set.
func (a *Authority) Grants(ctx context.Context, contractor string, live bool) ([]store.Grant, error) {
	if contractor != "" {
		if _, err := a.Contractor(ctx, contractor); err != nil {
			return nil, err
		}
	}
	f := store.GrantFilter{Contractor: contractor}
	if live {
		f.LiveAt = a.now()
	}
	return a.cfg.Store.Grants(ctx, f)
}

// RevokeGrant revokes a grant. Tokens already issued under it keep their
// own expiry: revoke them, or offboard, to cut access at once.
func (a *Authority) RevokeGrant(ctx context.Context, by Actor, id int64) error {
	rec := a.event(by, "grant.revoke")
	rec.Reason = fmt.Sprintf("grant %d", id)
	return a.act(ctx, rec, func(r *audit.Record) error {
		g, err := a.cfg.Store.Grant(ctx, id)
		if err != nil {
			return storeErr(err, fmt.Sprintf("grant %d", id))
		}
		r.Contractor = g.Contractor
		if !g.RevokedAt.IsZero() {
			return &Error{Reason: ReasonGrantRevoked, Msg: fmt.Sprintf("grant %d is already revoked", id), Err: store.ErrRevoked}
		}
		return nil
	}, func() error {
		err := a.cfg.Store.RevokeGrant(ctx, id, by.TokenID, a.now())
		if errors.Is(err, store.ErrRevoked) {
			return &Error{Reason: ReasonGrantRevoked, Msg: fmt.Sprintf("grant %d is already revoked", id), Err: err}
		}
		return storeErr(err, fmt.Sprintf("grant %d", id))
	})
}

// usable refuses a contractor that is disabled or past its engagement.
func (a *Authority) usable(c store.Contractor, now time.Time) error {
	if c.Disabled {
		return refuse(ReasonContractorDisabled, "contractor %q is disabled", c.Name)
	}
	if !now.Before(c.Until) {
		return refuse(ReasonEngagementEnded, "contractor %q's engagement ended at %s", c.Name, c.Until.Format(time.RFC3339))
	}
	return nil
}

// resourceScopes parses contractor scopes: no admin scopes, only known
// services (or "*").
func (a *Authority) resourceScopes(ctx context.Context, scopes []string) (scope.Set, error) {
	set, err := parseScopes(scopes)
	if err != nil {
		return nil, err
	}
	for _, s := range set {
		if s.IsAdmin() {
			return nil, refuse(ReasonInvalid, "scope %q is an admin scope: contractors cannot hold admin scopes", s)
		}
		if s.IsRequest() {
			return nil, refuse(ReasonInvalid, "scope %q is the request scope: it is issued alone, without a grant", s)
		}
		if svc := s.Service(); svc != "*" {
			if _, err := a.cfg.Store.Service(ctx, svc); err != nil {
				return nil, storeErr(err, fmt.Sprintf("service %q of scope %q", svc, s))
			}
		}
	}
	return set, nil
}

func parseScopes(scopes []string) (scope.Set, error) {
	if len(scopes) == 0 {
		return nil, refuse(ReasonInvalid, "at least one --scope is required")
	}
	if len(scopes) > maxScopes {
		return nil, refuse(ReasonInvalid, "too many scopes (max %d)", maxScopes)
	}
	set, err := scope.ParseSet(scopes)
	if err != nil {
		return nil, &Error{Reason: ReasonInvalid, Msg: err.Error(), Err: err}
	}
	return set, nil
}
