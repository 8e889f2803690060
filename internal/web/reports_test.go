package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"latchkey/internal/adminapi"
)

// accessRows returns the access report's rows as "contractor scope source".
func accessRows(t *testing.T, body string) []string {
	t.Helper()
	table := regexp.MustCompile(`(?s)<table id="access">.*?</table>`).FindString(body)
	if table == "" {
		t.Fatalf("no access report:\n%s", body)
	}
	row := regexp.MustCompile(`<tr><td><a href="[^"]*">([^<]*)</a></td><td><code>([^<]*)</code></td><td>(\w+) <code>`)
	var out []string
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		out = append(out, m[1]+" "+m[2]+" "+m[3])
	}
	return out
}

func TestAccessReport(t *testing.T) {
	l := serve(t)
	cl, _ := fixture(t, l)
	ctx := t.Context()
	if _, err := cl.AddContractor(ctx, adminapi.NewContractor{Name: "carol", Email: "c@example.com", Sponsor: "bob", Until: "10d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AddGrant(ctx, adminapi.NewGrant{Contractor: "carol", Scopes: []string{"echo:GET:/carol/**"}}); err != nil {
		t.Fatal(err)
	}
	c := browser(t)
	signIn(t, c, l, l.token)
	resp, body := send(t, c, "GET", l.admin+"/ui/reports", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reports: %d %s", resp.StatusCode, body)
	}
	all := strings.Join(accessRows(t, body), "\n")
	for _, want := range []string{"alice echo:GET:/hello/** grant", "alice echo:GET:/hello/** token", "carol echo:GET:/carol/** grant"} {
		if !strings.Contains(all, want) {
			t.Errorf("access report lacks %q:\n%s", want, all)
		}
	}
	_, body = send(t, c, "GET", l.admin+"/ui/reports?contractor=carol", nil, nil)
	if got := accessRows(t, body); len(got) != 1 || got[0] != "carol echo:GET:/carol/** grant" {
		t.Errorf("access report for carol: %q", got)
	}
	if resp, _ := send(t, c, "GET", l.admin+"/ui/reports?contractor=nobody", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("access report for an unknown contractor: %d, want 404", resp.StatusCode)
	}
}

func TestRevokeSelected(t *testing.T) {
	l := serve(t)
	cl, iss := fixture(t, l)
	ctx := t.Context()
	var more []adminapi.IssuedToken
	for range 2 {
		m, err := cl.IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{"echo:GET:/hello/**"}, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		more = append(more, m)
	}
	gone := more[1]
	if _, err := cl.RevokeToken(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	c := browser(t)
	signIn(t, c, l, l.token)

	// The tokens show in the unused report once older than its idle window
	// (1s, its smallest), each with a checkbox.
	box := `<input type="checkbox" id="sel-` + iss.ID + `" name="id" value="` + iss.ID + `" form="revoke-selected">`
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := send(t, c, "GET", l.admin+"/ui/reports?idle=1s", nil, nil)
		if strings.Contains(body, box) && strings.Contains(body, `action="/ui/reports/revoke"`) && strings.Contains(body, "Revoke all selected") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unused report shows no checkbox for %s:\n%s", iss.ID, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Refused before anything is revoked: no id, too many, a malformed one.
	many := make([]string, 501)
	for i := range many {
		many[i] = iss.ID
	}
	for _, tc := range []struct {
		name string
		ids  []string
		want string
	}{
		{"none", nil, "select at least one token"},
		{"too many", many, "revoke at most 500"},
		{"malformed", []string{iss.ID, "nope/../x"}, "invalid token id"},
	} {
		resp, body := send(t, c, "POST", l.admin+"/ui/reports/revoke", url.Values{"id": tc.ids}, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d, want 400 saying %q:\n%s", tc.name, resp.StatusCode, tc.want, body)
		}
	}
	if ts, err := cl.Tokens(ctx, "alice", true); err != nil || len(ts) != 2 {
		t.Fatalf("alice's live tokens after refused posts: %d, %v; want 2", len(ts), err)
	}

	ids := []string{iss.ID, more[0].ID, gone.ID, iss.ID}
	resp, body := send(t, c, "POST", l.admin+"/ui/reports/revoke", url.Values{"id": ids}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke selected: %d %s", resp.StatusCode, body)
	}
	revoked := regexp.MustCompile(`(?s)<ul id="revoked">.*?</ul>`).FindString(body)
	refused := regexp.MustCompile(`(?s)<table id="refused">.*?</table>`).FindString(body)
	for _, id := range []string{iss.ID, more[0].ID} {
		if strings.Count(revoked, "<code>"+id+"</code>") != 1 {
			t.Errorf("the result does not list %s as revoked once:\n%s", id, revoked)
		}
	}
	if !strings.Contains(refused, "<code>"+gone.ID+"</code>") || !strings.Contains(refused, "already revoked") || strings.Contains(revoked, gone.ID) {
		t.Errorf("the result does not list %s as refused, already revoked:\n%s", gone.ID, body)
	}
	if ts, err := cl.Tokens(ctx, "alice", true); err != nil || len(ts) != 0 {
		t.Errorf("alice's live tokens after revoking the selected: %+v, %v; want none", ts, err)
	}
	// Each was revoked through the Authority: each has its audit record.
	page, err := cl.AuditSearch(ctx, adminapi.AuditQuery{Action: "token.revoke", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, r := range page.Records {
		if r.Actor != "" && r.TokenID != "" {
			seen[r.TokenID] += r.Decision + " "
		}
	}
	for id, want := range map[string]string{iss.ID: "allow ", more[0].ID: "allow "} {
		if seen[id] != want {
			t.Errorf("token.revoke records of %s: %q, want %q", id, seen[id], want)
		}
	}
	if !strings.Contains(seen[gone.ID], "deny") {
		t.Errorf("no refused token.revoke record of %s: %q", gone.ID, seen[gone.ID])
	}
}
