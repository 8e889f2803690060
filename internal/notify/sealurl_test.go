package notify_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"latchkey/internal/notify"
)

// slackPath is the credential part of a Slack-like incoming-webhook URL.
const slackPath = "/services/T0SEALED/B0SEALED/PATHSECRETxyz"

// dbHolds reports whether the database file or its WAL (whichever exist)
// holds s in its raw bytes.
func dbHolds(t *testing.T, path, s string) []string {
	t.Helper()
	var in []string
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			in = append(in, f)
		}
	}
	return in
}

// TestURLSealed: a webhook's URL is stored sealed: neither the database
// file nor its WAL holds its path; listings show only its scheme and host
// and a fingerprint; the full URL comes back only through URL (shown
// once, when it is added); delivery still reaches it.
func TestURLSealed(t *testing.T) {
	e := newEnv(t)
	w, _ := e.add(t, notify.NewWebhook{URL: "https://hooks.example.com" + slackPath + "?token=QUERYSECRET", Format: notify.FormatSlack})
	if len(w.SealedURL) == 0 || w.URLHost != "https://hooks.example.com" {
		t.Fatalf("Add returned %+v: want a sealed URL only", w)
	}
	if full, err := e.n.URL(w); err != nil || full != "https://hooks.example.com"+slackPath+"?token=QUERYSECRET" {
		t.Errorf("URL: %q, %v", full, err)
	}
	ws, err := e.n.Webhooks(t.Context())
	if err != nil || len(ws) != 1 {
		t.Fatalf("Webhooks: %+v, %v", ws, err)
	}
	got := ws[0]
	if got.URLHost != "https://hooks.example.com" || bytes.Contains(got.SealedURL, []byte("PATHSECRET")) {
		t.Errorf("stored %+v", got)
	}
	masked, fp := notify.Masked(got)
	if masked != "https://hooks.example.com/…" || fp != notify.Fingerprint("https://hooks.example.com"+slackPath+"?token=QUERYSECRET") || len(fp) != 8 {
		t.Errorf("Masked: %q %q", masked, fp)
	}
	other, _ := e.add(t, notify.NewWebhook{URL: "https://hooks.example.com/services/T1/B1/other"})
	if _, fp2 := notify.Masked(other); fp2 == fp {
		t.Errorf("two URLs on one host share fingerprint %s", fp)
	}
	for _, s := range []string{"PATHSECRET", "QUERYSECRET", "T0SEALED", "/services/T1/B1/other"} {
		if in := dbHolds(t, e.path, s); len(in) > 0 {
			t.Errorf("%s in plain text in %v", s, in)
		}
		if strings.Contains(e.logBuf.String(), s) {
			t.Errorf("%s in the log", s)
		}
	}
	recs := auditRecords(t, e)
	for _, r := range recs {
		if strings.Contains(r.Reason, "/services") || strings.Contains(r.Reason, "SECRET") {
			t.Errorf("audit record holds the URL's path: %+v", r)
		}
	}
}
