package web_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

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
