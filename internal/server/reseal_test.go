package server

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"latchkey/internal/adminapi"
	"latchkey/internal/notify"
)

// TestServeResealsPlainURLs: a webhook whose URL an earlier version
// stored in plain text is sealed when serve starts, listed masked, and
// its path is then nowhere in the database file.
func TestServeResealsPlainURLs(t *testing.T) {
	const full = "https://hooks.example.com/services/T0/B0/OLDPLAINPATH"
	logBuf := &syncBuffer{}
	cfg := testConfig(newDir(t), logBuf)
	r := start(t, cfg)
	cl := &adminapi.Client{Addr: r.url, Token: adminToken(t, r.stdout.String())}
	added, err := cl.AddWebhook(t.Context(), adminapi.NewWebhook{URL: full})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, dbFile)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), `UPDATE webhooks SET url = ?, sealed_url = NULL, url_host = '', url_fingerprint = ''
		WHERE id = ?`, full, added.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()

	r = start(t, cfg)
	cl.Addr = r.url
	ws, err := cl.Webhooks(t.Context())
	if err != nil || len(ws) != 1 || ws[0].URL != "https://hooks.example.com/…" || ws[0].URLFingerprint != notify.Fingerprint(full) {
		t.Fatalf("Webhooks: %+v, %v", ws, err)
	}
	if !strings.Contains(logBuf.String(), "sealed URLs stored in plain text") {
		t.Errorf("no log of the reseal:\n%s", logBuf)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logBuf.String(), "OLDPLAINPATH") {
		t.Error("the log holds the URL's path")
	}
	for _, f := range []string{path, path + "-wal"} {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte("OLDPLAINPATH")) {
			t.Errorf("%s holds the URL's path", f)
		}
	}
}
