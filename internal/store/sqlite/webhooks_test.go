package sqlite_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey/internal/store"
	"latchkey/internal/store/sqlite"
)

// TestWebhookURLUpgrade: a webhook row written in plain text by a version
// before migration 0010 survives it whole, comes back with its PlainURL,
// and SealWebhookURL seals it once (only while it still holds that plain
// URL), after which the database file no longer holds the URL's path.
func TestWebhookURLUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latchkey.db")
	// Long, so that the row shrinks when sealed (as it does here, with a
	// short stand-in for the sealed URL): what SQLite frees of the old
	// cell then holds part of the path unless it is overwritten.
	plain := "https://hooks.example.com/services/T0OLD/B0OLD/" + strings.Repeat("OLDPATHSECRET", 40)
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	// Back to schema 9, with a row as versions 6 to 9 wrote it.
	for _, q := range []string{
		`ALTER TABLE webhooks DROP COLUMN sealed_url`,
		`ALTER TABLE webhooks DROP COLUMN url_host`,
		`ALTER TABLE webhooks DROP COLUMN url_fingerprint`,
		`DELETE FROM schema_migrations WHERE version = 10`,
		`INSERT INTO webhooks (id, url, secret, events, format, created_at, created_by)
			VALUES ('wh_0123456789abcdef', '` + plain + `', x'01020304', '["token.revoked"]', 'slack', 1764525600000, 'lka_root')`,
	} {
		if _, err := s.DB().ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := store.Webhook{ID: "wh_0123456789abcdef", PlainURL: plain, SealedSecret: []byte{1, 2, 3, 4},
		Events: []string{"token.revoked"}, Format: "slack", CreatedAt: time.UnixMilli(1764525600000).UTC(), CreatedBy: "lka_root"}
	got, err := s.Webhook(t.Context(), want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PlainURL != want.PlainURL || got.SealedURL != nil || got.URLHost != "" || !bytes.Equal(got.SealedSecret, want.SealedSecret) ||
		got.Format != want.Format || !got.CreatedAt.Equal(want.CreatedAt) || got.CreatedBy != want.CreatedBy || len(got.Events) != 1 {
		t.Fatalf("after migration: got %+v, want %+v", got, want)
	}

	sealed := []byte("s")
	if err := s.SealWebhookURL(t.Context(), want.ID, plain+"x", sealed, "https://hooks.example.com", "0123abcd"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SealWebhookURL with another plain URL: %v, want ErrNotFound", err)
	}
	if err := s.SealWebhookURL(t.Context(), want.ID, plain, sealed, "https://hooks.example.com", "0123abcd"); err != nil {
		t.Fatal(err)
	}
	if err := s.SealWebhookURL(t.Context(), want.ID, plain, sealed, "https://hooks.example.com", "0123abcd"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SealWebhookURL twice: %v, want ErrNotFound", err)
	}
	want.PlainURL, want.SealedURL, want.URLHost, want.URLFingerprint = "", sealed, "https://hooks.example.com", "0123abcd"
	ws, err := s.Webhooks(t.Context())
	if err != nil || len(ws) != 1 {
		t.Fatalf("Webhooks: %+v, %v", ws, err)
	}
	got = ws[0]
	if got.PlainURL != "" || !bytes.Equal(got.SealedURL, sealed) || got.URLHost != want.URLHost || got.URLFingerprint != want.URLFingerprint ||
		!bytes.Equal(got.SealedSecret, want.SealedSecret) || got.Format != want.Format || got.CreatedBy != want.CreatedBy {
		t.Errorf("after SealWebhookURL: got %+v, want %+v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte("OLDPATHSECRET")) {
			t.Errorf("%s still holds the plain-text URL", f)
		}
	}
}
