package adminapi_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/adminapi"
)

func ptr(s string) *string { return &s }

func TestPolicyRoutes(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	c := e.client(e.root)
	lvl, err := c.SetPolicy(ctx, adminapi.PolicyUpdate{DefaultTTL: ptr("8h"), MaxTTL: ptr("7d"), Idle: ptr("14d")})
	if err != nil {
		t.Fatal(err)
	}
	if lvl.Level != "server" || lvl.DefaultTTL != "8h" || lvl.MaxTTL != "7d" || lvl.Idle != "14d" {
		t.Errorf("server level: %+v", lvl)
	}
	if _, err := c.SetPolicy(ctx, adminapi.PolicyUpdate{Service: "billing", MaxTTL: ptr("1d"), Approval: ptr("required")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetPolicy(ctx, adminapi.PolicyUpdate{Contractor: "alice", Idle: ptr("3d")}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Policy(ctx, "billing", "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := adminapi.PolicyView{Service: "billing", Contractor: "alice",
		DefaultTTL: adminapi.PolicyValue{Value: "8h", From: "server"},
		MaxTTL:     adminapi.PolicyValue{Value: "1d", From: "service billing"},
		Idle:       adminapi.PolicyValue{Value: "3d", From: "contractor alice"},
		Approval:   adminapi.PolicyValue{Value: "required", From: "service billing"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("effective policy (-want +got):\n%s", d)
	}
	// Clearing: approval unset, the service's approval no longer applies.
	if _, err := c.SetPolicy(ctx, adminapi.PolicyUpdate{Service: "billing", Unset: []string{"approval"}}); err != nil {
		t.Fatal(err)
	}
	got, err = c.Policy(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Approval != (adminapi.PolicyValue{Value: "none"}) || got.MaxTTL.Value != "7d" {
		t.Errorf("server policy after unset: %+v", got)
	}
	// Issuing under approval is refused with 403 approval_required.
	if _, err := c.SetPolicy(ctx, adminapi.PolicyUpdate{Contractor: "alice", Approval: ptr("required")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: "1h"})
	var ae *adminapi.APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Problem.Error != "approval_required" {
		t.Errorf("issue under approval: %v", err)
	}
	// A grant longer than the max grant: 400 grant_too_long.
	if _, err := c.SetPolicy(ctx, adminapi.PolicyUpdate{MaxGrant: ptr("2d")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.AddGrant(ctx, adminapi.NewGrant{Contractor: "alice", Scopes: []string{"billing:write:/v1/**"}, Until: "3d"})
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Problem.Error != "grant_too_long" {
		t.Errorf("grant over the max: %v", err)
	}
}

func TestPolicyRouteRefusals(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	c := e.client(e.root)
	tests := []struct {
		name   string
		u      adminapi.PolicyUpdate
		status int
		reason string
	}{
		{"nothing to change", adminapi.PolicyUpdate{}, 400, "invalid_request"},
		{"bad duration", adminapi.PolicyUpdate{Idle: ptr("soon")}, 400, "invalid_request"},
		{"zero duration", adminapi.PolicyUpdate{Idle: ptr("0s")}, 400, "invalid_request"},
		{"empty duration", adminapi.PolicyUpdate{Idle: ptr("")}, 400, "invalid_request"},
		{"set and unset", adminapi.PolicyUpdate{Idle: ptr("1d"), Unset: []string{"idle"}}, 400, "invalid_request"},
		{"unknown unset", adminapi.PolicyUpdate{Unset: []string{"colour"}}, 400, "invalid_request"},
		{"bad approval", adminapi.PolicyUpdate{Approval: ptr("sometimes")}, 400, "invalid_request"},
		{"approval set and unset", adminapi.PolicyUpdate{Approval: ptr("none"), Unset: []string{"approval"}}, 400, "invalid_request"},
		{"both levels", adminapi.PolicyUpdate{Service: "billing", Contractor: "alice", Idle: ptr("1d")}, 400, "invalid_request"},
		{"unknown service", adminapi.PolicyUpdate{Service: "payroll", Idle: ptr("1d")}, 404, "not_found"},
		{"unknown contractor", adminapi.PolicyUpdate{Contractor: "mallory", Idle: ptr("1d")}, 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.SetPolicy(ctx, tc.u)
			var ae *adminapi.APIError
			if !errors.As(err, &ae) || ae.Status != tc.status || ae.Problem.Error != tc.reason {
				t.Errorf("SetPolicy: %v, want %d %s", err, tc.status, tc.reason)
			}
		})
	}
	for _, q := range [][2]string{{"payroll", ""}, {"", "mallory"}} {
		_, err := c.Policy(ctx, q[0], q[1])
		if reasonOf(err) != "not_found" {
			t.Errorf("Policy(%q, %q): %v, want not_found", q[0], q[1], err)
		}
	}
	// Scopes: a read-only policy token cannot write; another resource cannot read.
	reader := e.client(e.adminToken(t, "admin:policy:read"))
	if _, err := reader.Policy(ctx, "", ""); err != nil {
		t.Errorf("admin:policy:read reading: %v", err)
	}
	if _, err := reader.SetPolicy(ctx, adminapi.PolicyUpdate{Idle: ptr("1d")}); reasonOf(err) != "forbidden" {
		t.Errorf("admin:policy:read writing: %v, want forbidden", err)
	}
	other := e.client(e.adminToken(t, "admin:tokens:*"))
	if _, err := other.Policy(ctx, "", ""); reasonOf(err) != "forbidden" {
		t.Errorf("admin:tokens:* reading the policy: %v, want forbidden", err)
	}
	// Strict body: unknown fields are refused.
	err := c.Do(ctx, "PUT", "/v1/policy", nil, map[string]any{"idle": "1d", "colour": "red"}, nil)
	if reasonOf(err) != "invalid_request" {
		t.Errorf("unknown field: %v", err)
	}
}
