package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"latchkey/internal/adminapi"
	"latchkey/internal/server"
)

func TestRotate(t *testing.T) {
	l := serve(t)
	cl, iss := fixture(t, l)
	c := browser(t)
	signIn(t, c, l, l.token)
	resp, body := send(t, c, "POST", l.admin+"/ui/tokens/"+iss.ID+"/rotate", url.Values{"grace": {""}}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("rotate: %d %s", resp.StatusCode, body)
	}
	next := regexp.MustCompile(`lk_[0-9A-Za-z]+`).FindString(body)
	if next == "" || next == iss.Token {
		t.Fatalf("the rotate page shows no new token:\n%s", body)
	}
	if code, _ := call(t, l, next, "/echo/hello/x"); code != http.StatusOK {
		t.Errorf("gateway with the successor: %d", code)
	}
	if code, _ := call(t, l, iss.Token, "/echo/hello/x"); code == http.StatusOK {
		t.Errorf("gateway with the rotated token (no grace): 200")
	}
	ts, err := cl.Tokens(t.Context(), "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Parent != iss.ID {
		t.Errorf("alice's live tokens after rotation: %+v", ts)
	}
}

func TestAccessRequests(t *testing.T) {
	l := serve(t)
	cl, _ := fixture(t, l)
	ctx := t.Context()
	reqTok, err := cl.IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{"latchkey:request"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	alice := &adminapi.Client{Addr: l.admin, Token: reqTok.Token}
	var ids []string
	for _, why := range []string{"incident 42", "just curious"} {
		r, err := alice.CreateRequest(ctx, adminapi.NewRequest{Scopes: []string{"echo:GET:/hello/**"}, TTL: "1h", Reason: why})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	// bob is alice's sponsor: his admin token is named by its note.
	bob, err := cl.IssueToken(ctx, adminapi.NewToken{Admin: true, TTL: "1h", Note: "bob",
		Scopes: []string{"admin:requests:read", "admin:requests:write"}})
	if err != nil {
		t.Fatal(err)
	}
	c := browser(t)
	signIn(t, c, l, bob.Token)
	resp, body := send(t, c, "GET", l.admin+"/ui/requests", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "incident 42") || !strings.Contains(body, `action="/ui/requests/`+ids[0]+`/approve"`) {
		t.Fatalf("requests page: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := send(t, c, "POST", l.admin+"/ui/requests/"+ids[0]+"/approve", url.Values{}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	if resp, body := send(t, c, "POST", l.admin+"/ui/requests/"+ids[1]+"/deny", url.Values{"reason": {"no"}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deny: %d %s", resp.StatusCode, body)
	}
	rs, err := cl.Requests(ctx, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rs {
		got[r.ID] = r.State
	}
	if got[ids[0]] != "approved" || got[ids[1]] != "denied" {
		t.Errorf("request states after approve and deny: %v", got)
	}
}

func TestAuditPages(t *testing.T) {
	l := serve(t)
	c := browser(t)
	signIn(t, c, l, l.token)
	for range 60 {
		send(t, c, "GET", l.admin+"/ui/", nil, nil)
	}
	index := regexp.MustCompile(`<tr><td>(\d+) <a href="/ui/audit/`)
	next := regexp.MustCompile(`rel="next" href="([^"]+)"`)
	resp, body := send(t, c, "GET", l.admin+"/ui/audit?action=admin.request", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("audit: %d", resp.StatusCode)
	}
	first := index.FindAllStringSubmatch(body, -1)
	m := next.FindStringSubmatch(body)
	if len(first) != 50 || m == nil {
		t.Fatalf("first page: %d records, next link %v; want 50 and a link", len(first), m)
	}
	if n := func(s string) int { i, _ := strconv.Atoi(s); return i }; n(first[0][1]) <= n(first[49][1]) {
		t.Errorf("first page not newest first: %s ... %s", first[0][1], first[49][1])
	}
	_, body = send(t, c, "GET", l.admin+strings.ReplaceAll(m[1], "&amp;", "&"), nil, nil)
	second := index.FindAllStringSubmatch(body, -1)
	if len(second) == 0 || second[0][1] == first[49][1] {
		t.Fatalf("second page: %d records", len(second))
	}
	if _, body = send(t, c, "GET", l.admin+"/ui/audit?decision=deny", nil, nil); strings.Contains(body, "<td>allow</td>") {
		t.Errorf("decision=deny shows allowed records")
	}
	if resp, _ := send(t, c, "GET", l.admin+"/ui/audit?decision=maybe", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("decision=maybe: %d, want 400", resp.StatusCode)
	}
}

// TestProofWhileCheckpointing opens the proof page while serve signs
// checkpoints as fast as it can: a checkpoint already signed at the log's
// size must not turn the page into an error.
func TestProofWhileCheckpointing(t *testing.T) {
	l := serve(t, func(c *server.Config) { c.CheckpointEvery = time.Millisecond })
	c := browser(t)
	signIn(t, c, l, l.token)
	for i := range 40 {
		resp, body := send(t, c, "GET", l.admin+"/ui/audit/0/proof", nil, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "The proof checks") {
			t.Fatalf("proof page, try %d: %d\n%s", i, resp.StatusCode, body)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRevokeGrant(t *testing.T) {
	l := serve(t)
	cl, _ := fixture(t, l)
	gs, err := cl.Grants(t.Context(), "alice", true)
	if err != nil || len(gs) != 1 {
		t.Fatalf("grants: %v %v", gs, err)
	}
	c := browser(t)
	signIn(t, c, l, l.token)
	_, body := send(t, c, "GET", l.admin+"/ui/contractors/alice", nil, nil)
	action := fmt.Sprintf(`action="/ui/grants/%d/revoke"`, gs[0].ID)
	if !strings.Contains(body, action) {
		t.Fatalf("contractor page has no %s", action)
	}
	resp, body := send(t, c, "POST", l.admin+fmt.Sprintf("/ui/grants/%d/revoke", gs[0].ID), url.Values{"contractor": {"alice"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/contractors/alice" {
		t.Fatalf("revoke grant: %d %s", resp.StatusCode, body)
	}
	if gs, err = cl.Grants(t.Context(), "alice", true); err != nil || len(gs) != 0 {
		t.Fatalf("live grants after revoking: %v %v", gs, err)
	}
}
