package access_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"path/filepath"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/seal"
	"latchkey/internal/store"
)

const day = 24 * time.Hour

func TestResolve(t *testing.T) {
	srv := store.Policy{Level: store.PolicyServer, DefaultTTL: 8 * time.Hour, MaxTTL: 7 * day, Idle: 14 * day, MaxGrant: 90 * day, Approval: store.ApprovalNone}
	billing := store.Policy{Level: store.PolicyService, Name: "billing", MaxTTL: day, Idle: 3 * day, Approval: store.ApprovalRequired}
	wiki := store.Policy{Level: store.PolicyService, Name: "wiki", DefaultTTL: 2 * time.Hour, MaxGrant: 30 * day}
	alice := store.Policy{Level: store.PolicyContractor, Name: "alice", MaxTTL: 4 * time.Hour, Idle: 3 * day}
	bob := store.Policy{Level: store.PolicyContractor, Name: "bob", Approval: store.ApprovalRequired, DefaultTTL: 10 * day}
	all := []store.Policy{alice, billing, bob, srv, wiki}
	set := func(d time.Duration, from string) access.Setting { return access.Setting{Value: d, From: from} }
	ceiling := set(30*day, access.FromCeiling)
	tests := []struct {
		name       string
		ceiling    time.Duration
		policies   []store.Policy
		services   []string
		contractor string
		want       access.Effective
	}{
		{"nothing set: only the ceiling", 30 * day, nil, []string{"billing"}, "alice",
			access.Effective{MaxTTL: ceiling}},
		{"server only", 30 * day, all, nil, "",
			access.Effective{DefaultTTL: set(8*time.Hour, "server"), MaxTTL: set(7*day, "server"), Idle: set(14*day, "server"), MaxGrant: set(90*day, "server")}},
		{"a service narrows max ttl and idle, requires approval", 30 * day, all, []string{"billing"}, "",
			access.Effective{DefaultTTL: set(8*time.Hour, "server"), MaxTTL: set(day, "service billing"), Idle: set(3*day, "service billing"),
				MaxGrant: set(90*day, "server"), Approval: true, ApprovalFrom: "service billing"}},
		{"smallest default wins", 30 * day, all, []string{"wiki"}, "",
			access.Effective{DefaultTTL: set(2*time.Hour, "service wiki"), MaxTTL: set(7*day, "server"), Idle: set(14*day, "server"), MaxGrant: set(30*day, "service wiki")}},
		{"every service named narrows", 30 * day, all, []string{"wiki", "billing"}, "",
			access.Effective{DefaultTTL: set(2*time.Hour, "service wiki"), MaxTTL: set(day, "service billing"), Idle: set(3*day, "service billing"),
				MaxGrant: set(30*day, "service wiki"), Approval: true, ApprovalFrom: "service billing"}},
		{"* names every service", 30 * day, all, []string{"*"}, "",
			access.Effective{DefaultTTL: set(2*time.Hour, "service wiki"), MaxTTL: set(day, "service billing"), Idle: set(3*day, "service billing"),
				MaxGrant: set(30*day, "service wiki"), Approval: true, ApprovalFrom: "service billing"}},
		{"contractor narrows; a tie names the outer level", 30 * day, all, []string{"billing"}, "alice",
			access.Effective{DefaultTTL: set(4*time.Hour, "contractor alice"), MaxTTL: set(4*time.Hour, "contractor alice"), Idle: set(3*day, "service billing"),
				MaxGrant: set(90*day, "server"), Approval: true, ApprovalFrom: "service billing"}},
		{"default never above the effective max", 30 * day, []store.Policy{bob}, nil, "bob",
			access.Effective{DefaultTTL: set(10*day, "contractor bob"), MaxTTL: ceiling, Approval: true, ApprovalFrom: "contractor bob"}},
		{"default clamped to the max", 5 * day, []store.Policy{bob}, nil, "bob",
			access.Effective{DefaultTTL: set(5*day, access.FromCeiling), MaxTTL: set(5*day, access.FromCeiling), Approval: true, ApprovalFrom: "contractor bob"}},
		{"the ceiling caps every level", 2 * day, []store.Policy{srv, bob}, nil, "bob",
			access.Effective{DefaultTTL: set(8*time.Hour, "server"), MaxTTL: set(2*day, access.FromCeiling), Idle: set(14*day, "server"),
				MaxGrant: set(90*day, "server"), Approval: true, ApprovalFrom: "contractor bob"}},
		{"a policy of another contractor or service does not apply", 30 * day, []store.Policy{alice, billing}, []string{"wiki"}, "bob",
			access.Effective{MaxTTL: ceiling}},
		{"none at a narrower level does not lift required", 30 * day,
			[]store.Policy{{Level: store.PolicyServer, Approval: store.ApprovalRequired}, {Level: store.PolicyContractor, Name: "carol", Approval: store.ApprovalNone}}, nil, "carol",
			access.Effective{MaxTTL: ceiling, Approval: true, ApprovalFrom: "server"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := access.Resolve(tc.ceiling, tc.policies, tc.services, tc.contractor)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Resolve mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func dur(d time.Duration) *time.Duration { return &d }
func str(s string) *string               { return &s }

// setPolicy sets a policy that must be accepted.
func (e *env) setPolicy(t *testing.T, ch access.PolicyChange) {
	t.Helper()
	if _, err := e.a.SetPolicy(context.Background(), root, ch); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
}

func TestSetPolicyRefusals(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	tests := []struct {
		name   string
		ch     access.PolicyChange
		reason string
	}{
		{"unknown service", access.PolicyChange{Service: str("payroll"), Idle: dur(day)}, access.ReasonNotFound},
		{"unknown contractor", access.PolicyChange{Contractor: str("mallory"), Idle: dur(day)}, access.ReasonNotFound},
		{"service and contractor", access.PolicyChange{Service: str("billing"), Contractor: str("alice"), Idle: dur(day)}, access.ReasonInvalid},
		{"bad approval", access.PolicyChange{Approval: str("maybe")}, access.ReasonInvalid},
		{"too short", access.PolicyChange{MaxTTL: dur(time.Millisecond)}, access.ReasonInvalid},
		{"negative", access.PolicyChange{Idle: dur(-time.Hour)}, access.ReasonInvalid},
		{"too long", access.PolicyChange{MaxGrant: dur(4000 * day)}, access.ReasonInvalid},
		{"default above max", access.PolicyChange{DefaultTTL: dur(2 * day), MaxTTL: dur(day)}, access.ReasonInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.a.SetPolicy(context.Background(), root, tc.ch)
			if got := access.ReasonOf(err); got != tc.reason {
				t.Errorf("SetPolicy: %v (reason %q), want reason %q", err, got, tc.reason)
			}
		})
	}
	if ps, _ := e.st.Policies(context.Background()); len(ps) != 0 {
		t.Errorf("refused changes stored %d policies", len(ps))
	}
	// Every refusal is recorded as a denied policy.set.
	var denied int
	for _, r := range e.records(t) {
		if r.Action == "policy.set" && r.Decision == audit.Deny {
			denied++
		}
	}
	if denied != len(tests) {
		t.Errorf("%d denied policy.set records, want %d", denied, len(tests))
	}
}

func TestSetPolicyChangesAndClears(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	e.setPolicy(t, access.PolicyChange{Service: str("billing"), MaxTTL: dur(day), Idle: dur(3 * day)})
	p, err := e.a.SetPolicy(ctx, root, access.PolicyChange{Service: str("billing"), Idle: dur(0), Approval: str("required")})
	if err != nil {
		t.Fatal(err)
	}
	if p.MaxTTL != day || p.Idle != 0 || p.Approval != store.ApprovalRequired || p.UpdatedBy != "root" {
		t.Errorf("after clearing idle: %+v", p)
	}
	// Clearing everything removes the level.
	e.setPolicy(t, access.PolicyChange{Service: str("billing"), MaxTTL: dur(0), Approval: str("")})
	if ps, _ := e.st.Policies(ctx); len(ps) != 0 {
		t.Errorf("policies after clearing every value: %+v", ps)
	}
	var allowed []string
	for _, r := range e.records(t) {
		if r.Action == "policy.set" && r.Decision == audit.Allow {
			if r.Service != "billing" || r.Actor != "root" {
				t.Errorf("policy.set record: service %q actor %q", r.Service, r.Actor)
			}
			allowed = append(allowed, r.Reason)
		}
	}
	if len(allowed) != 3 || !strings.Contains(allowed[1], "service billing policy: default_ttl inherit, max_ttl 1d, idle inherit, max_grant inherit, approval required") {
		t.Errorf("policy.set reasons: %q", allowed)
	}
}

func TestIssueUnderPolicy(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	issue := func(ttl time.Duration) (access.Issued, error) {
		return e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: ttl})
	}
	// Without a default, a TTL is still required.
	if _, err := issue(0); access.ReasonOf(err) != access.ReasonTTLMissing {
		t.Fatalf("no ttl, no default: %v", err)
	}
	// Without a policy, the ceiling keeps its message.
	_, err := issue(31 * day)
	if access.ReasonOf(err) != access.ReasonTTLTooLong || !strings.Contains(err.Error(), "server's maximum token lifetime 30d") {
		t.Errorf("ttl over the ceiling: %v", err)
	}
	e.setPolicy(t, access.PolicyChange{DefaultTTL: dur(8 * time.Hour), MaxTTL: dur(7 * day)})
	e.setPolicy(t, access.PolicyChange{Service: str("billing"), MaxTTL: dur(2 * day)})
	iss, err := issue(0)
	if err != nil {
		t.Fatalf("issue with the default ttl: %v", err)
	}
	if got := iss.Token.ExpiresAt.Sub(iss.Token.CreatedAt); got != 8*time.Hour {
		t.Errorf("default ttl gave a lifetime of %v, want 8h", got)
	}
	_, err = issue(3 * day)
	if access.ReasonOf(err) != access.ReasonTTLTooLong || !strings.Contains(err.Error(), "2d set by the service billing policy") {
		t.Errorf("ttl over the service's max: %v", err)
	}
	if _, err := issue(2 * day); err != nil {
		t.Errorf("ttl at the service's max: %v", err)
	}

	// Approval required by the contractor's level: refused, nothing written.
	e.setPolicy(t, access.PolicyChange{Contractor: str("alice"), Approval: str("required")})
	before := e.snapshot(t)
	_, err = issue(time.Hour)
	if access.ReasonOf(err) != access.ReasonApprovalRequired || !strings.Contains(err.Error(), "contractor alice policy") {
		t.Errorf("issue under approval: %v", err)
	}
	if d := cmp.Diff(before, e.snapshot(t)); d != "" {
		t.Errorf("refusal changed the store:\n%s", d)
	}
	recs := e.records(t)
	if last := recs[len(recs)-1]; last.Action != "token.issue" || last.Decision != audit.Deny || last.Reason != access.ReasonApprovalRequired {
		t.Errorf("last record %+v, want a token.issue denied approval_required", last)
	}
	// Admin tokens are not contractor tokens: no contractor policy applies.
	if _, err := e.a.Issue(ctx, root, access.IssueRequest{Admin: true, Scopes: []string{"admin:tokens:read"}, TTL: 20 * day}); err != nil {
		t.Errorf("admin token under a contractor policy: %v", err)
	}
}

func TestGrantUnderPolicy(t *testing.T) {
	e := newEnv(t)
	e.seed(t) // alice's engagement: 60 days
	ctx := context.Background()
	now := e.clock.Now()
	e.setPolicy(t, access.PolicyChange{Service: str("billing"), MaxGrant: dur(30 * day)})
	_, err := e.a.AddGrant(ctx, root, "alice", []string{"billing:write:/v1/**"}, now.Add(31*day))
	if access.ReasonOf(err) != access.ReasonGrantTooLong || !strings.Contains(err.Error(), "30d set by the service billing policy") {
		t.Errorf("grant over the max: %v", err)
	}
	// An end the client computed a moment before reads as the length
	// asked, not 30d23h59m57s.
	_, err = e.a.AddGrant(ctx, root, "alice", []string{"billing:write:/v1/**"}, now.Add(31*day-3*time.Second))
	if access.ReasonOf(err) != access.ReasonGrantTooLong || !strings.Contains(err.Error(), "grant of 31d exceeds") {
		t.Errorf("grant over the max, asked a moment before: %v", err)
	}
	if _, err := e.a.AddGrant(ctx, root, "alice", []string{"billing:write:/v1/**"}, now.Add(30*day)); err != nil {
		t.Errorf("grant at the max: %v", err)
	}
	// The default end (the engagement's) is brought within the policy.
	g, err := e.a.AddGrant(ctx, root, "alice", []string{"billing:POST:/v1/x"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(30 * day); !g.ExpiresAt.Equal(want) {
		t.Errorf("default grant end %v, want %v", g.ExpiresAt, want)
	}
}

func TestRotateUnderPolicy(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: 10 * day})
	if err != nil {
		t.Fatal(err)
	}
	e.setPolicy(t, access.PolicyChange{Contractor: str("alice"), MaxTTL: dur(day)})
	next, err := e.a.Rotate(ctx, root, iss.Token.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := next.Token.ExpiresAt.Sub(next.Token.CreatedAt); got != day {
		t.Errorf("successor lifetime %v, want the policy's max 24h", got)
	}
}

// TestIdleRevocationEvent: a revocation for idleness is announced as
// token.idle_reaped, every other as token.revoked.
func TestIdleRevocationEvent(t *testing.T) {
	e := newEnv(t)
	var got []access.Event
	e.seed(t)
	e2 := e.withEvents(t, func(_ context.Context, ev access.Event) { got = append(got, ev) })
	ctx := context.Background()
	var ids []string
	for range 2 {
		iss, err := e2.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, iss.Token.ID)
	}
	if err := e2.RevokeFor(ctx, root, ids[0], store.RevokeIdle); err != nil {
		t.Fatal(err)
	}
	if err := e2.RevokeFor(ctx, root, ids[1], store.RevokeLeaked); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range got {
		types = append(types, ev.Type+" "+ev.Reason)
	}
	want := []string{"token.issued ", "token.issued ", "token.idle_reaped idle", "token.revoked leaked"}
	if d := cmp.Diff(want, types); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// withEvents returns another Authority on e's store, audit log and clock
// that emits events to events.
func (e *env) withEvents(t *testing.T, events func(context.Context, access.Event)) *access.Authority {
	t.Helper()
	key, err := seal.LoadOrCreateKey(filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := access.New(access.Config{Store: e.st, Box: box, Now: e.clock.Now, Audit: e.log, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return a
}
