package access_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
	"latchkey/internal/audit"
)

// records returns every audit record, oldest first.
func (e *env) records(t *testing.T) []audit.Record {
	t.Helper()
	ctx := context.Background()
	n, err := e.log.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for i := range n {
		r, _, err := e.log.Record(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// brief is the part of a record the tests compare.
type brief struct{ Action, Decision, Contractor, TokenID, Reason string }

func briefs(rs []audit.Record) []brief {
	var out []brief
	for _, r := range rs {
		reason := r.Reason
		if r.Decision == audit.Allow {
			reason = "" // details of allowed actions are checked separately
		}
		out = append(out, brief{r.Action, r.Decision, r.Contractor, r.TokenID, reason})
	}
	return out
}

// TestEveryActionAudited: each action and each refusal leaves exactly one
// record, with the actor, and no secret.
func TestEveryActionAudited(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	by := root
	by.Name, by.Source = "root admin", "127.0.0.1"
	g := e.seed(t)
	iss, err := e.a.Issue(ctx, by, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Issue(ctx, by, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:POST:/v1/x"}, TTL: time.Hour}); err == nil {
		t.Fatal("uncovered scope issued")
	}
	next, err := e.a.Rotate(ctx, by, iss.Token.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.Revoke(ctx, by, next.Token.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.a.RevokeGrant(ctx, by, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Offboard(ctx, by, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := e.a.RecordRequest(ctx, by, access.Request{Method: "GET", Path: "/v1/tokens", Status: 200}); err != nil {
		t.Fatal(err)
	}
	got := e.records(t)
	want := []brief{
		{"service.add", "allow", "", "", ""},
		{"contractor.add", "allow", "alice", "", ""},
		{"grant.add", "allow", "alice", "", ""},
		{"token.issue", "allow", "alice", iss.Token.ID, ""},
		{"token.issue", "deny", "alice", "", access.ReasonScopeNotCovered},
		{"token.rotate", "allow", "alice", iss.Token.ID, ""},
		{"token.revoke", "allow", "alice", next.Token.ID, ""},
		{"grant.revoke", "allow", "alice", "", ""},
		{"contractor.offboard", "allow", "alice", "", ""},
		{"admin.request", "allow", "", "", ""},
	}
	if diff := cmp.Diff(want, briefs(got)); diff != "" {
		t.Fatalf("audit records (-want +got):\n%s", diff)
	}
	last := got[len(got)-1]
	if last.Actor != "root" || last.ActorName != "root admin" || last.Source != "127.0.0.1" || last.Path != "/v1/tokens" {
		t.Fatalf("request record = %+v", last)
	}
	if !strings.Contains(got[5].Reason, "successor "+next.Token.ID) {
		t.Fatalf("rotate record does not name the successor: %q", got[5].Reason)
	}
	for _, r := range got {
		for _, secret := range []string{iss.Text, iss.Text[15:47], next.Text[15:47], "up-secret"} {
			if strings.Contains(string(r.Encode()), secret) {
				t.Fatalf("record %+v holds a secret", r)
			}
		}
	}
	if _, _, err := e.log.Verify(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// TestFailClosed: when the audit log cannot be written, every action is
// refused with audit_unavailable and nothing changes.
func TestFailClosed(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/x"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	before := e.snapshot(t)
	if err := e.log.Close(); err != nil { // the audit log is gone
		t.Fatal(err)
	}
	now := e.clock.Now()
	ops := map[string]func() error{
		"service.add": func() error {
			_, err := e.a.AddService(ctx, root, "crm", "http://127.0.0.1:9", nil)
			return err
		},
		"contractor.add": func() error {
			_, err := e.a.AddContractor(ctx, root, access.NewContractor{Name: "bob", Email: "b@example.com", Sponsor: "s", Until: now.Add(time.Hour)})
			return err
		},
		"grant.add": func() error {
			_, err := e.a.AddGrant(ctx, root, "alice", []string{"billing:GET:/v2/**"}, time.Time{})
			return err
		},
		"token.issue": func() error {
			_, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:GET:/v1/y"}, TTL: time.Hour})
			return err
		},
		"token.issue refused": func() error {
			_, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"billing:POST:/v1/y"}, TTL: time.Hour})
			return err
		},
		"token.rotate": func() error { _, err := e.a.Rotate(ctx, root, iss.Token.ID, 0); return err },
		"token.revoke": func() error { return e.a.Revoke(ctx, root, iss.Token.ID) },
		"grant.revoke": func() error { return e.a.RevokeGrant(ctx, root, 1) },
		"offboard":     func() error { _, err := e.a.Offboard(ctx, root, "alice"); return err },
		"request":      func() error { return e.a.RecordRequest(ctx, root, access.Request{Method: "GET", Path: "/v1/x"}) },
	}
	for name, op := range ops {
		err := op()
		if access.ReasonOf(err) != access.ReasonAuditUnavailable || !errors.Is(err, audit.ErrClosed) {
			t.Errorf("%s with the audit log down: err = %v, want audit_unavailable", name, err)
		}
	}
	if diff := cmp.Diff(before, e.snapshot(t)); diff != "" {
		t.Fatalf("actions took effect without an audit record (-before +after):\n%s", diff)
	}
	if _, _, err := e.a.Authenticate(ctx, iss.Text, netip.Addr{}); err != nil {
		t.Fatalf("the token should still work: revocation was refused: %v", err)
	}
}

// TestRecordRequestOddPath: a huge or non-UTF-8 path is recorded (cut and
// repaired), not refused for want of a valid record.
func TestRecordRequestOddPath(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, path := range []string{strings.Repeat("/a", 5000), "/\xff\xfe/x"} {
		if err := e.a.RecordRequest(ctx, root, access.Request{Method: "GET", Path: path, Status: 404, Reason: "not_found"}); err != nil {
			t.Fatalf("path of %d bytes: %v", len(path), err)
		}
	}
	rs := e.records(t)
	if len(rs[0].Path) > 1024 || !strings.HasSuffix(rs[0].Path, "…") || rs[1].Path != "/\uFFFD/x" {
		t.Fatalf("recorded paths %q (%d bytes), %q", rs[0].Path[:20], len(rs[0].Path), rs[1].Path)
	}
}
