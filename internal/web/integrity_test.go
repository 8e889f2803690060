package web_test

import (
	"html"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"latchkey/internal/store/sqlite/sqlitetest"
)

// verified posts "Verify now" and returns the audit page once the
// verification has ended.
func verified(t *testing.T, c *http.Client, l live) string {
	t.Helper()
	resp, body := send(t, c, "POST", l.admin+"/ui/audit/verify", url.Values{}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/audit#verification" {
		t.Fatalf("verify now: %d to %q, want 303 to the audit page\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := send(t, c, "GET", l.admin+"/ui/audit", nil, nil)
		if !strings.Contains(body, "Verification running since") {
			return html.UnescapeString(body)
		}
		if time.Now().After(deadline) {
			t.Fatal("the verification did not end within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAuditIntegrity(t *testing.T) {
	l := serve(t)
	cl, _ := fixture(t, l)
	c := browser(t)
	signIn(t, c, l, l.token)
	_, body := send(t, c, "GET", l.admin+"/ui/audit", nil, nil)
	if !strings.Contains(body, "Never verified in this process.") || !strings.Contains(body, `action="/ui/audit/verify"`) {
		t.Fatalf("audit page before any verification:\n%s", body)
	}

	// The latest signed checkpoint: at least as big as one signed now, by
	// the log's key.
	cp, err := cl.AuditCheckpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, body = send(t, c, "GET", l.admin+"/ui/audit", nil, nil)
	body = html.UnescapeString(body)
	m := regexp.MustCompile(`Latest signed checkpoint: <b>(\d+)</b> records, root <code>[A-Za-z0-9+/=]{44}</code>, signed [^<]+ by key <code>([^<]+)</code>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no checkpoint on the audit page:\n%s", body)
	}
	if n, _ := strconv.ParseInt(m[1], 10, 64); n < cp.Size {
		t.Errorf("checkpoint size %d on the page, want at least %d", n, cp.Size)
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(cp.Origin) + `\+[0-9a-f]{8}$`).MatchString(m[2]) {
		t.Errorf("checkpoint key id %q, want %s+HASH", m[2], cp.Origin)
	}

	body = verified(t, c, l)
	if !regexp.MustCompile(`Verified OK, [^<]+, in [^:]+: <b>\d+</b> records, root <code>[A-Za-z0-9+/=]{44}</code>`).MatchString(body) {
		t.Fatalf("audit page after verifying:\n%s", body)
	}

	// Change a stored record: the next verification fails, naming it.
	db, err := sqlitetest.OpenRaw(t.Context(), filepath.Join(l.dir, "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `UPDATE audit_records SET leaf = (SELECT leaf FROM audit_records WHERE idx = 2) WHERE idx = 1`); err != nil {
		t.Fatal(err)
	}
	body = verified(t, c, l)
	if !regexp.MustCompile(`Verification FAILED, [^<]+, after [^:]+: audit: record 1: `).MatchString(body) {
		t.Fatalf("audit page after verifying a changed log:\n%s", body)
	}
}
