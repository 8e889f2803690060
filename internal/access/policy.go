package access

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/scope"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

// Reason words of policy refusals.
const (
	// ReasonApprovalRequired: the contractor's effective policy requires a
	// sponsor's approval, so a token cannot be issued directly.
	ReasonApprovalRequired = "approval_required"
	// ReasonGrantTooLong: the grant would last longer than the effective
	// maximum grant length.
	ReasonGrantTooLong = "grant_too_long"
)

// FromCeiling is the Setting.From of the server's absolute maximum token
// lifetime (Config.MaxTTL, serve --max-ttl), which no policy can raise.
const FromCeiling = "serve --max-ttl"

// maxPolicyDuration caps every duration a policy sets.
const maxPolicyDuration = 3650 * 24 * time.Hour

// Setting is one value of an effective policy and the level it comes
// from: "server", "service NAME", "contractor NAME", or FromCeiling.
// A zero Value is not set (From is then "").
type Setting struct {
	Value time.Duration
	From  string
}

// Effective is the policy that applies to a contractor's token: the server
// level narrowed by the level of every service its scopes name and by the
// contractor's level. Max TTL, idle and max grant are the smallest value
// any level sets (max TTL never above the ceiling); default TTL is the
// smallest default set, never above the effective max TTL; approval is
// required if any level requires it.
type Effective struct {
	DefaultTTL   Setting
	MaxTTL       Setting // always set
	Idle         Setting
	MaxGrant     Setting
	Approval     bool
	ApprovalFrom string // the first level requiring approval, "" if none
}

// Resolve computes the effective policy for a token of contractor whose
// scopes name services ("*" names every service), from the stored
// policies and the server's ceiling. It is pure.
func Resolve(ceiling time.Duration, policies []store.Policy, services []string, contractor string) Effective {
	eff := Effective{MaxTTL: Setting{ceiling, FromCeiling}}
	all := slices.Contains(services, "*")
	var levels []store.Policy
	for _, p := range policies {
		switch {
		case p.Level == store.PolicyServer,
			p.Level == store.PolicyService && (all || slices.Contains(services, p.Name)),
			p.Level == store.PolicyContractor && p.Name == contractor && contractor != "":
			levels = append(levels, p)
		}
	}
	// Server first, then services by name, then the contractor: on a tie
	// the outer level is named.
	order := map[string]int{store.PolicyServer: 0, store.PolicyService: 1, store.PolicyContractor: 2}
	slices.SortStableFunc(levels, func(a, b store.Policy) int {
		if c := order[a.Level] - order[b.Level]; c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, p := range levels {
		from := levelName(p.Level, p.Name)
		narrow(&eff.DefaultTTL, p.DefaultTTL, from)
		narrow(&eff.MaxTTL, p.MaxTTL, from)
		narrow(&eff.Idle, p.Idle, from)
		narrow(&eff.MaxGrant, p.MaxGrant, from)
		if p.Approval == store.ApprovalRequired && !eff.Approval {
			eff.Approval, eff.ApprovalFrom = true, from
		}
	}
	if eff.DefaultTTL.Value > eff.MaxTTL.Value {
		eff.DefaultTTL = eff.MaxTTL
	}
	return eff
}

// narrow lowers s to v (set at level from) if v is set and smaller.
func narrow(s *Setting, v time.Duration, from string) {
	if v > 0 && (s.Value == 0 || v < s.Value) {
		*s = Setting{v, from}
	}
}

// levelName is how a policy level is named in messages and in Setting.From.
func levelName(level, name string) string {
	if level == store.PolicyServer {
		return "server"
	}
	return level + " " + name
}

// scopeServices returns the services that scopes name ("*" for any), in
// order, without duplicates. Scopes that do not parse are skipped: the
// rules that check scopes refuse them.
func scopeServices(scopes []string) []string {
	var out []string
	for _, raw := range scopes {
		s, err := scope.Parse(raw)
		if err != nil || s.IsAdmin() {
			continue
		}
		if !slices.Contains(out, s.Service()) {
			out = append(out, s.Service())
		}
	}
	return out
}

// policyFor returns the effective policy of a token of contractor with scopes.
func (a *Authority) policyFor(ctx context.Context, contractor string, scopes []string) (Effective, error) {
	ps, err := a.cfg.Store.Policies(ctx)
	if err != nil {
		return Effective{}, err
	}
	return Resolve(a.cfg.MaxTTL, ps, scopeServices(scopes), contractor), nil
}

// EffectivePolicy returns the policy that applies to tokens of contractor
// for service (either may be empty: the server's policy then, narrowed by
// the other). An unknown service or contractor is not_found.
func (a *Authority) EffectivePolicy(ctx context.Context, service, contractor string) (Effective, error) {
	if err := a.policyTarget(ctx, service, contractor); err != nil {
		return Effective{}, err
	}
	var services []string
	if service != "" {
		services = []string{service}
	}
	ps, err := a.cfg.Store.Policies(ctx)
	if err != nil {
		return Effective{}, err
	}
	return Resolve(a.cfg.MaxTTL, ps, services, contractor), nil
}

// policyTarget checks that the named service and contractor exist.
func (a *Authority) policyTarget(ctx context.Context, service, contractor string) error {
	if service != "" {
		if _, err := a.Service(ctx, service); err != nil {
			return err
		}
	}
	if contractor != "" {
		if _, err := a.Contractor(ctx, contractor); err != nil {
			return err
		}
	}
	return nil
}

// PolicyChange changes the policy of one level: the server's, or (one of
// them set) a service's or a contractor's. A nil field is left as it is;
// a pointer to zero ("" for Approval) clears the value, which the level
// then inherits.
type PolicyChange struct {
	Service, Contractor                *string
	DefaultTTL, MaxTTL, Idle, MaxGrant *time.Duration
	Approval                           *string // store.ApprovalRequired, store.ApprovalNone or ""
}

// SetPolicy applies a change to one level's policy, audited as policy.set,
// and returns the level's policy as stored.
func (a *Authority) SetPolicy(ctx context.Context, by Actor, ch PolicyChange) (p store.Policy, err error) {
	rec := a.event(by, "policy.set")
	level, name := store.PolicyServer, ""
	switch {
	case ch.Service != nil && ch.Contractor != nil:
		level = "both"
	case ch.Service != nil:
		level, name, rec.Service = store.PolicyService, *ch.Service, *ch.Service
	case ch.Contractor != nil:
		level, name, rec.Contractor = store.PolicyContractor, *ch.Contractor, *ch.Contractor
	}
	err = a.act(ctx, rec, func(r *audit.Record) error {
		if level == "both" {
			return refuse(ReasonInvalid, "set the policy of a service or of a contractor, not both at once")
		}
		if p, err = a.changedPolicy(ctx, by, level, name, ch); err != nil {
			return err
		}
		r.Reason = describePolicy(p)
		return nil
	}, func() error {
		return a.cfg.Store.SetPolicy(ctx, p)
	})
	return p, err
}

// changedPolicy validates a change and returns the level's new policy.
func (a *Authority) changedPolicy(ctx context.Context, by Actor, level, name string, ch PolicyChange) (store.Policy, error) {
	switch level {
	case store.PolicyService:
		if err := a.policyTarget(ctx, name, ""); err != nil {
			return store.Policy{}, err
		}
	case store.PolicyContractor:
		if err := a.policyTarget(ctx, "", name); err != nil {
			return store.Policy{}, err
		}
	}
	ps, err := a.cfg.Store.Policies(ctx)
	if err != nil {
		return store.Policy{}, err
	}
	p := store.Policy{Level: level, Name: name}
	if i := slices.IndexFunc(ps, func(q store.Policy) bool { return q.Level == level && q.Name == name }); i >= 0 {
		p = ps[i]
	}
	for _, f := range []struct {
		name string
		in   *time.Duration
		out  *time.Duration
	}{{"default ttl", ch.DefaultTTL, &p.DefaultTTL}, {"max ttl", ch.MaxTTL, &p.MaxTTL},
		{"idle", ch.Idle, &p.Idle}, {"max grant", ch.MaxGrant, &p.MaxGrant}} {
		if f.in == nil {
			continue
		}
		if d := *f.in; d != 0 && (d < time.Second || d > maxPolicyDuration) {
			return p, refuse(ReasonInvalid, "%s %s: want 1s to %s", f.name, timespec.Format(d), timespec.Format(maxPolicyDuration))
		}
		*f.out = *f.in
	}
	if ch.Approval != nil {
		switch *ch.Approval {
		case "", store.ApprovalRequired, store.ApprovalNone:
			p.Approval = *ch.Approval
		default:
			return p, refuse(ReasonInvalid, "approval %q: want required or none", *ch.Approval)
		}
	}
	if p.DefaultTTL > 0 && p.MaxTTL > 0 && p.DefaultTTL > p.MaxTTL {
		return p, refuse(ReasonInvalid, "default ttl %s exceeds the max ttl %s of the same policy",
			timespec.Format(p.DefaultTTL), timespec.Format(p.MaxTTL))
	}
	p.UpdatedAt, p.UpdatedBy = a.now(), by.TokenID
	return p, nil
}

// describePolicy is what the audit record of policy.set says.
func describePolicy(p store.Policy) string {
	v := func(d time.Duration) string {
		if d == 0 {
			return "inherit"
		}
		return timespec.Format(d)
	}
	approval := p.Approval
	if approval == "" {
		approval = "inherit"
	}
	return fmt.Sprintf("%s policy: default_ttl %s, max_ttl %s, idle %s, max_grant %s, approval %s",
		levelName(p.Level, p.Name), v(p.DefaultTTL), v(p.MaxTTL), v(p.Idle), v(p.MaxGrant), approval)
}
