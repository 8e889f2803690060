package access_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
)

// jkt is a well-formed SHA-256 thumbprint (RFC 9449's example key's).
const jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

func TestIssueBindingRefusals(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	sc := []string{"billing:GET:/v1/x"}
	tests := []struct {
		name string
		req  access.IssueRequest
		msg  string
	}{
		{"unknown binding", access.IssueRequest{Contractor: "alice", Scopes: sc, TTL: time.Hour, Bind: "jwt", Thumbprint: jkt}, "unknown binding"},
		{"no thumbprint", access.IssueRequest{Contractor: "alice", Scopes: sc, TTL: time.Hour, Bind: access.BindDPoP}, "needs the key's thumbprint"},
		{"thumbprint without binding", access.IssueRequest{Contractor: "alice", Scopes: sc, TTL: time.Hour, Thumbprint: jkt}, "needs a binding"},
		{"short thumbprint", access.IssueRequest{Contractor: "alice", Scopes: sc, TTL: time.Hour, Bind: access.BindDPoP, Thumbprint: jkt[:42]}, "invalid thumbprint"},
		{"padded thumbprint", access.IssueRequest{Contractor: "alice", Scopes: sc, TTL: time.Hour, Bind: access.BindMTLS, Thumbprint: jkt[:42] + "="}, "invalid thumbprint"},
		{"standard base64", access.IssueRequest{Contractor: "alice", Scopes: sc, TTL: time.Hour, Bind: access.BindDPoP, Thumbprint: strings.Replace(jkt, "-", "+", 1)}, "invalid thumbprint"},
		{"admin token", access.IssueRequest{Admin: true, Scopes: []string{"admin:tokens:read"}, TTL: time.Hour, Bind: access.BindDPoP, Thumbprint: jkt}, "only contractor tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snapshot(t)
			_, err := e.a.Issue(ctx, root, tt.req)
			if access.ReasonOf(err) != access.ReasonInvalid || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Issue err = %v, want invalid_request containing %q", err, tt.msg)
			}
			if d := cmp.Diff(before, e.snapshot(t)); d != "" {
				t.Fatalf("refused issue changed the store:\n%s", d)
			}
		})
	}
}

// TestBindingKept: a bound token keeps its binding through the store and
// the cache, and what is derived from it or rotated from it is bound to
// the same key.
func TestBindingKept(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/**"}, TTL: time.Hour,
		Bind: access.BindDPoP, Thumbprint: jkt})
	if err != nil {
		t.Fatal(err)
	}
	if iss.Token.CnfJKT != jkt || iss.Token.CnfX5T != "" {
		t.Fatalf("issued cnf = %q/%q", iss.Token.CnfJKT, iss.Token.CnfX5T)
	}
	tok, _, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{})
	if err != nil || tok.CnfJKT != jkt {
		t.Fatalf("Authenticate: cnf %q, %v", tok.CnfJKT, err)
	}
	child, err := e.a.Derive(ctx, access.Actor{TokenID: iss.Token.ID, Name: "alice"}, access.DeriveRequest{Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Minute})
	if err != nil || child.Token.CnfJKT != jkt {
		t.Fatalf("derived token: cnf %q, %v: narrowing must keep the binding", child.Token.CnfJKT, err)
	}
	next, err := e.a.Rotate(ctx, root, iss.Token.ID, 0)
	if err != nil || next.Token.CnfJKT != jkt {
		t.Fatalf("rotated token: cnf %q, %v: rotation must keep the binding", next.Token.CnfJKT, err)
	}
}
