package notify_test

import (
	"bytes"
	"database/sql"
	"os"
	"strings"
	"testing"

	"latchkey/internal/notify"
	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
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
	if w.PlainURL != "" || len(w.SealedURL) == 0 {
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
	if got.PlainURL != "" || got.URLHost != "https://hooks.example.com" || bytes.Contains(got.SealedURL, []byte("PATHSECRET")) {
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

// TestResealPlainURL: a webhook stored by a version before URLs were
// sealed (its URL in plain text, no sealed URL, host or fingerprint) is
// listed masked and delivered to as it is; Reseal seals it, keeping
// everything else, after which deliveries still reach it and, once the
// store has checkpointed, the database file no longer holds its path.
// A second Reseal has nothing to do.
func TestResealPlainURL(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, e.clock, 200)
	full := r.srv.URL + slackPath
	e.add(t, notify.NewWebhook{URL: "https://hooks.example.com/before"})
	w, secret := e.add(t, notify.NewWebhook{URL: full})
	r.secret = secret
	e.add(t, notify.NewWebhook{URL: "https://hooks.example.com/after"})
	e.st.Close()
	// What migration 0010 leaves of a row that an older version wrote,
	// written with no Store in between, as another binary would.
	raw, err := sql.Open("sqlite", e.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(t.Context(), `UPDATE webhooks
		SET url = ?, sealed_url = NULL, url_host = '', url_fingerprint = '' WHERE id = ?`, full, w.ID); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if in := dbHolds(t, e.path, "PATHSECRET"); len(in) == 0 {
		t.Fatal("the old row's plain-text URL is not in the file: the test below proves nothing")
	}

	st, err := sqlite.Open(t.Context(), e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	old, err := st.Webhook(t.Context(), w.ID)
	if err != nil || old.PlainURL != full || old.SealedURL != nil {
		t.Fatalf("old row: %+v, %v", old, err)
	}
	if masked, fp := notify.Masked(old); masked != r.srv.URL+"/…" || fp != notify.Fingerprint(full) {
		t.Errorf("Masked old row: %q %q", masked, fp)
	}
	n, err := notify.New(notify.Config{Store: st, Box: e.box, Now: e.clock.Now, Log: e.log})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := n.Reseal(t.Context()); err != nil || k != 1 {
		t.Fatalf("Reseal: %d, %v; want 1", k, err)
	}
	if k, err := n.Reseal(t.Context()); err != nil || k != 0 {
		t.Fatalf("Reseal again: %d, %v; want 0", k, err)
	}
	got, err := st.Webhook(t.Context(), w.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := old
	want.PlainURL, want.SealedURL, want.URLHost, want.URLFingerprint = "", got.SealedURL, r.srv.URL, notify.Fingerprint(full)
	if got.PlainURL != "" || len(got.SealedURL) == 0 || got.URLHost != want.URLHost || got.URLFingerprint != want.URLFingerprint ||
		got.Format != old.Format || !bytes.Equal(got.SealedSecret, old.SealedSecret) || got.CreatedAt != old.CreatedAt || got.CreatedBy != old.CreatedBy {
		t.Errorf("resealed: got %+v, want %+v", got, want)
	}
	if u, err := n.URL(got); err != nil || u != full {
		t.Errorf("URL after reseal: %q, %v", u, err)
	}

	d := e.dispatcher(t, st, 1)
	n.Notify(t.Context(), e.revoked())
	tick(t, d)
	if reqs := r.requests(); len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	ds, err := st.Deliveries(t.Context(), store.DeliveryFilter{WebhookID: w.ID})
	if err != nil || len(ds) != 1 || ds[0].State != store.DeliveryDelivered {
		t.Errorf("deliveries %+v, %v", ds, err)
	}
	st.Close()
	if in := dbHolds(t, e.path, "PATHSECRET"); len(in) > 0 {
		t.Errorf("the plain-text path is still in %v after Reseal", in)
	}
}
