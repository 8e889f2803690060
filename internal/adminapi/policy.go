package adminapi

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/store"
	"latchkey/internal/timespec"
)

// The token policy endpoints (issue 5): GET /v1/policy shows the
// effective policy, PUT /v1/policy changes one level's.

func (s *Server) policyRoutes() []route {
	return []route{
		{"GET", "/v1/policy", "policy", "read", "The effective token policy (TTL, idle, grant length, approval) and the level each value comes from",
			nil, PolicyView{}, []string{"service", "contractor"}, 200, s.showPolicy},
		{"PUT", "/v1/policy", "policy", "write", "Set or clear values of the server's, a service's or a contractor's token policy",
			PolicyUpdate{}, PolicyLevel{}, nil, 200, s.setPolicy},
	}
}

// PolicyValue is one value of the effective policy: a duration (or, for
// approval, "required" or "none") and the level it comes from ("server",
// "service NAME", "contractor NAME", "serve --max-ttl"); both are omitted
// when no level sets it.
type PolicyValue struct {
	Value string `json:"value,omitempty"`
	From  string `json:"from,omitempty"`
}

// PolicyView is the reply of GET /v1/policy: the policy that applies to a
// token of Contractor for Service (each optional).
type PolicyView struct {
	Service    string      `json:"service,omitempty"`
	Contractor string      `json:"contractor,omitempty"`
	DefaultTTL PolicyValue `json:"default_ttl"`
	MaxTTL     PolicyValue `json:"max_ttl"`
	Idle       PolicyValue `json:"idle"`
	MaxGrant   PolicyValue `json:"max_grant"`
	Approval   PolicyValue `json:"approval"`
}

// PolicyUpdate is the body of PUT /v1/policy: it changes the policy of
// Service or Contractor (at most one), or of the server if neither is
// set. Durations are like "8h" or "30d"; Approval is "required" or
// "none". Unset names values to clear (inherit): "default_ttl",
// "max_ttl", "idle", "max_grant", "approval". Absent values are unchanged.
type PolicyUpdate struct {
	Service    string   `json:"service,omitempty"`
	Contractor string   `json:"contractor,omitempty"`
	DefaultTTL *string  `json:"default_ttl,omitempty"`
	MaxTTL     *string  `json:"max_ttl,omitempty"`
	Idle       *string  `json:"idle,omitempty"`
	MaxGrant   *string  `json:"max_grant,omitempty"`
	Approval   *string  `json:"approval,omitempty"`
	Unset      []string `json:"unset,omitempty"`
}

// PolicyLevel is what one level sets, the reply of PUT /v1/policy. Level
// is "server", "service" or "contractor"; values it does not set are
// omitted.
type PolicyLevel struct {
	Level      string     `json:"level"`
	Name       string     `json:"name,omitempty"`
	DefaultTTL string     `json:"default_ttl,omitempty"`
	MaxTTL     string     `json:"max_ttl,omitempty"`
	Idle       string     `json:"idle,omitempty"`
	MaxGrant   string     `json:"max_grant,omitempty"`
	Approval   string     `json:"approval,omitempty"`
	UpdatedAt  *time.Time `json:"updated_at,omitempty"`
	UpdatedBy  string     `json:"updated_by,omitempty"`
}

func (s *Server) showPolicy(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	svc, con := q.Get("service"), q.Get("contractor")
	eff, err := s.cfg.Authority.EffectivePolicy(ctx, svc, con)
	if err != nil {
		return 0, nil, err
	}
	approval := PolicyValue{Value: store.ApprovalNone}
	if eff.Approval {
		approval = PolicyValue{Value: store.ApprovalRequired, From: eff.ApprovalFrom}
	}
	return 200, PolicyView{Service: svc, Contractor: con, DefaultTTL: policyValue(eff.DefaultTTL), MaxTTL: policyValue(eff.MaxTTL),
		Idle: policyValue(eff.Idle), MaxGrant: policyValue(eff.MaxGrant), Approval: approval}, nil
}

func policyValue(s access.Setting) PolicyValue {
	if s.Value == 0 {
		return PolicyValue{}
	}
	return PolicyValue{Value: timespec.Format(s.Value), From: s.From}
}

// policyFields are the names PolicyUpdate.Unset takes.
var policyFields = []string{"default_ttl", "max_ttl", "idle", "max_grant", "approval"}

func (s *Server) setPolicy(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in PolicyUpdate
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	ch, err := policyChange(in)
	if err != nil {
		return 0, nil, err
	}
	p, err := s.cfg.Authority.SetPolicy(ctx, c.actor(), ch)
	return 200, toPolicyLevel(p), err
}

// policyChange validates a PolicyUpdate into an access.PolicyChange.
func policyChange(in PolicyUpdate) (access.PolicyChange, error) {
	var ch access.PolicyChange
	if in.Service != "" {
		ch.Service = &in.Service
	}
	if in.Contractor != "" {
		ch.Contractor = &in.Contractor
	}
	if len(in.Unset) > len(policyFields) {
		return ch, invalid("unset names too many values")
	}
	for _, u := range in.Unset {
		if !slices.Contains(policyFields, u) {
			return ch, invalid("unset %q: want one of default_ttl, max_ttl, idle, max_grant, approval", truncate(u))
		}
	}
	changed := false
	for _, f := range []struct {
		name string
		in   *string
		out  **time.Duration
	}{{"default_ttl", in.DefaultTTL, &ch.DefaultTTL}, {"max_ttl", in.MaxTTL, &ch.MaxTTL},
		{"idle", in.Idle, &ch.Idle}, {"max_grant", in.MaxGrant, &ch.MaxGrant}} {
		d, set, err := policyDuration(f.name, f.in, slices.Contains(in.Unset, f.name))
		if err != nil {
			return ch, err
		}
		if set {
			*f.out, changed = &d, true
		}
	}
	unsetApproval := slices.Contains(in.Unset, "approval")
	switch {
	case in.Approval != nil && unsetApproval:
		return ch, invalid("approval is both set and unset")
	case in.Approval != nil && *in.Approval != store.ApprovalRequired && *in.Approval != store.ApprovalNone:
		return ch, invalid("invalid approval %q: want required or none", truncate(*in.Approval))
	case in.Approval != nil:
		ch.Approval, changed = in.Approval, true
	case unsetApproval:
		ch.Approval, changed = new(string), true
	}
	if !changed {
		return ch, invalid("nothing to change: set or unset at least one value")
	}
	return ch, nil
}

// policyDuration parses one duration of a PolicyUpdate; set reports
// whether the update changes it (d is 0 to clear it).
func policyDuration(name string, raw *string, unset bool) (d time.Duration, set bool, err error) {
	switch {
	case raw != nil && unset:
		return 0, false, invalid("%s is both set and unset", name)
	case unset:
		return 0, true, nil
	case raw == nil:
		return 0, false, nil
	}
	d, err = timespec.ParseDuration(*raw)
	if err != nil {
		return 0, false, invalid("invalid %s: %v", name, err)
	}
	if d <= 0 {
		return 0, false, invalid("invalid %s %q: want a positive duration (unset it to inherit)", name, truncate(*raw))
	}
	return d, true, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func toPolicyLevel(p store.Policy) PolicyLevel {
	f := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return timespec.Format(d)
	}
	return PolicyLevel{Level: p.Level, Name: p.Name, DefaultTTL: f(p.DefaultTTL), MaxTTL: f(p.MaxTTL), Idle: f(p.Idle),
		MaxGrant: f(p.MaxGrant), Approval: p.Approval, UpdatedAt: optTime(p.UpdatedAt), UpdatedBy: p.UpdatedBy}
}

// Policy returns the effective policy for tokens of contractor for
// service (either may be empty).
func (c *Client) Policy(ctx context.Context, service, contractor string) (out PolicyView, err error) {
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	if contractor != "" {
		q.Set("contractor", contractor)
	}
	return out, c.get(ctx, "/v1/policy", q, &out)
}

// SetPolicy changes one level's policy.
func (c *Client) SetPolicy(ctx context.Context, u PolicyUpdate) (out PolicyLevel, err error) {
	return out, c.Do(ctx, http.MethodPut, "/v1/policy", nil, u, &out)
}
