package adminapi_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"latchkey/internal/adminapi"
)

// approverToken issues an admin token with scope admin:requests:write
// whose note (the approver's identity) is name.
func (e *env) approverToken(t *testing.T, name string) string {
	t.Helper()
	iss, err := e.client(e.root).IssueToken(context.Background(), adminapi.NewToken{Admin: true, Scopes: []string{"admin:requests:write", "admin:requests:read"}, TTL: "1h", Note: name})
	if err != nil {
		t.Fatal(err)
	}
	return iss.Token
}

// TestSelfServiceRoutes: the contractor routes refuse admin tokens and
// contractor tokens without the request scope; the admin request routes
// refuse contractor tokens.
func TestSelfServiceRoutes(t *testing.T) {
	e := newEnv(t)
	_, plain := e.seed(t)
	reqTok, err := e.client(e.root).IssueToken(t.Context(), adminapi.NewToken{Contractor: "alice", Scopes: []string{"latchkey:request"}, TTL: "1h"})
	if err != nil {
		t.Fatalf("issue request-only token: %v", err)
	}
	bound, err := e.client(e.root).IssueToken(t.Context(), adminapi.NewToken{Contractor: "alice", Scopes: []string{"latchkey:request"}, TTL: "1h",
		Bind: "dpop", JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})
	if err != nil {
		t.Fatalf("issue bound request-only token: %v", err)
	}
	body := `{"scopes":["billing:GET:/v1/x"],"ttl":"1h","reason":"r"}`
	for _, tc := range []struct {
		method, path, tok, reason string
		status                    int
	}{
		{"POST", "/v1/self/requests", e.root, "forbidden", 403},
		{"GET", "/v1/self/requests", e.root, "forbidden", 403},
		{"POST", "/v1/self/requests", plain, "not_request_token", 403},
		{"GET", "/v1/self/requests", plain, "not_request_token", 403},
		{"POST", "/v1/self/requests/rq_aaaaaaaaaaaaaaaa/fetch", plain, "not_request_token", 403},
		{"GET", "/v1/requests", reqTok.Token, "forbidden", 403},
		{"POST", "/v1/requests/rq_aaaaaaaaaaaaaaaa/approve", reqTok.Token, "forbidden", 403},
		{"GET", "/v1/self/requests/rq_aaaaaaaaaaaaaaaa", reqTok.Token, "not_found", 404},
		{"GET", "/v1/self/requests/nope", reqTok.Token, "invalid_request", 400},
		{"GET", "/v1/self/requests?state=lost", reqTok.Token, "invalid_request", 400},
		// A key-bound token proves nothing here: refused, never bearer.
		{"POST", "/v1/self/requests", bound.Token, "proof_invalid", 401},
		{"POST", "/v1/self/tokens", bound.Token, "proof_invalid", 401},
	} {
		status, got := call(t, e, tc.method, tc.path, tc.tok, body)
		if status != tc.status || !strings.Contains(got, `"error":"`+tc.reason+`"`) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, status, got, tc.status, tc.reason)
		}
	}
}

func TestRequestAPI(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := t.Context()
	reqTok, err := e.client(e.root).IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{"latchkey:request"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	alice := e.client(reqTok.Token)
	r, err := alice.CreateRequest(ctx, adminapi.NewRequest{Scopes: []string{"billing:GET:/v1/invoices/*"}, TTL: "2h", Reason: "INC-1"})
	if err != nil || r.State != "pending" || r.TTL != "2h" || r.ApprovalsNeeded != 1 {
		t.Fatalf("create: %+v, %v", r, err)
	}
	_, err = alice.CreateRequest(ctx, adminapi.NewRequest{Scopes: []string{"billing:GET:/v1/invoices/*"}, TTL: "2 hours", Reason: "x"})
	if reasonOf(err) != "invalid_request" {
		t.Errorf("bad ttl: %v", err)
	}
	if status, got := call(t, e, "POST", "/v1/requests/"+r.ID+"/deny", e.approverToken(t, "bob"), `{"reason":"x","extra":1}`); status != 400 {
		t.Errorf("deny with an unknown field: %d %s", status, got)
	}
	_, err = e.client(e.approverToken(t, "alice")).ApproveRequest(ctx, r.ID)
	if reasonOf(err) != "self_approval" {
		t.Errorf("approval by alice herself: %v", err)
	}
	_, err = e.client(e.adminToken(t, "admin:requests:write")).ApproveRequest(ctx, r.ID)
	if reasonOf(err) != "approver_unknown" {
		t.Errorf("approval by a token without a note: %v", err)
	}
	mine, err := alice.Requests(ctx, "pending", "")
	if err != nil || len(mine) != 1 || mine[0].ID != r.ID {
		t.Errorf("own pending requests: %+v, %v", mine, err)
	}
	bob := e.client(e.approverToken(t, "bob"))
	if r, err = bob.ApproveRequest(ctx, r.ID); err != nil || r.State != "approved" || r.DecidedBy != "bob" {
		t.Fatalf("approve: %+v, %v", r, err)
	}
	all, err := bob.Requests(ctx, "", "alice")
	if err != nil || len(all) != 1 || len(all[0].Approvals) != 1 || all[0].Approvals[0].Approver != "bob" {
		t.Errorf("all requests: %+v, %v", all, err)
	}
	iss, err := alice.FetchRequest(ctx, r.ID)
	if err != nil || !strings.HasPrefix(iss.Token, "lk_") || iss.Contractor != "alice" {
		t.Fatalf("fetch: %+v, %v", iss, err)
	}
	_, err = alice.FetchRequest(ctx, r.ID)
	if reasonOf(err) != "already_fetched" {
		t.Errorf("second fetch: %v", err)
	}
	shown, err := alice.ShowRequest(ctx, r.ID)
	if err != nil || shown.State != "fetched" || shown.TokenID != iss.ID {
		t.Errorf("show after fetch: %+v, %v", shown, err)
	}
	// The approver groups.
	admin := e.client(e.root)
	if _, err := admin.AddApprover(ctx, "sre", "carol"); err != nil {
		t.Fatal(err)
	}
	if as, err := admin.Approvers(ctx); err != nil || len(as) != 1 || as[0].Name != "carol" {
		t.Errorf("approvers: %+v, %v", as, err)
	}
	if _, err := admin.RemoveApprover(ctx, "sre", "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RemoveApprover(ctx, "sre", "carol"); reasonOf(err) != "not_found" {
		t.Errorf("remove twice: %v", err)
	}
}

// TestApproverIdentity: an admin who may issue admin tokens and approve,
// but not manage identities, cannot mint a token named after the sponsor;
// a token it issues without a note speaks for the admin itself.
func TestApproverIdentity(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := t.Context()
	carolTok, err := e.client(e.root).IssueToken(ctx, adminapi.NewToken{Admin: true, Scopes: []string{"admin:tokens:write", "admin:tokens:read", "admin:requests:write"}, TTL: "1h", Note: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	carol := e.client(carolTok.Token)
	_, err = carol.IssueToken(ctx, adminapi.NewToken{Admin: true, Scopes: []string{"admin:requests:write"}, TTL: "1h", Note: "bob"})
	var ae *adminapi.APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Problem.Error != "forbidden" || !strings.Contains(ae.Problem.Message, "admin:approvers:write") {
		t.Errorf("carol names bob: %v", err)
	}
	own, err := carol.IssueToken(ctx, adminapi.NewToken{Admin: true, Scopes: []string{"admin:requests:write"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if tk, err := carol.ShowToken(ctx, own.ID); err != nil || tk.Note != "carol" {
		t.Errorf("token carol issued without a note: %+v, %v", tk, err)
	}
}

// TestFetchByRequester: only the request-only token that made a request
// can fetch its token; another of the contractor's can still show it.
func TestFetchByRequester(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := t.Context()
	var toks [2]*adminapi.Client
	for i := range toks {
		tok, err := e.client(e.root).IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{"latchkey:request"}, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		toks[i] = e.client(tok.Token)
	}
	mine, other := toks[0], toks[1]
	r, err := mine.CreateRequest(ctx, adminapi.NewRequest{Scopes: []string{"billing:GET:/v1/invoices/*"}, TTL: "2h", Reason: "INC-2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client(e.approverToken(t, "bob")).ApproveRequest(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	_, err = other.FetchRequest(ctx, r.ID)
	var ae *adminapi.APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Problem.Error != "forbidden" {
		t.Errorf("fetch by another request-only token: %v", err)
	}
	if _, err := other.ShowRequest(ctx, r.ID); err != nil {
		t.Errorf("show by another request-only token: %v", err)
	}
	if _, err := mine.FetchRequest(ctx, r.ID); err != nil {
		t.Errorf("fetch by the requesting token: %v", err)
	}
}
