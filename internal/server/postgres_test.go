package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey/internal/adminapi"
	"latchkey/internal/audit"
	"latchkey/internal/store/postgres/pgtest"
)

// TestServePostgresReplicas: two serve processes, each with its own data
// directory, share one PostgreSQL store. The first initialises it; the
// second is refused until its data directory holds copies of the keys;
// then a token revoked through the first is refused by the second's
// gateway, which had it cached, soon after (the invalidation feed), and
// the audit log verifies from either.
func TestServePostgresReplicas(t *testing.T) {
	dsn := pgtest.DSN(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer up.Close()
	dir1, dir2 := newDir(t), newDir(t)
	cfg1 := testConfig(dir1, &syncBuffer{})
	cfg1.Store = dsn
	first := start(t, cfg1)
	if _, err := os.Stat(filepath.Join(dir1, dbFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a SQLite store was created beside the PostgreSQL one: %v", err)
	}
	_, iss := onboard(t, first, adminapi.NewService{Name: "billing", Upstream: up.URL}, "billing:read:/v1/**", "billing:GET:/v1/*")
	cl := &adminapi.Client{Addr: first.url, Token: adminToken(t, first.stdout.String())}

	cfg2 := testConfig(dir2, &syncBuffer{})
	cfg2.Store = dsn
	err := Run(t.Context(), cfg2, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "has no seal.key") {
		t.Fatalf("second replica without the keys: %v, want a refusal naming seal.key", err)
	}
	for _, name := range []string{keyFile, audit.KeyFile, audit.PubFile} {
		b, err := os.ReadFile(filepath.Join(dir1, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir2, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	second := start(t, cfg2)
	if strings.Contains(second.stdout.String(), "admin token") {
		t.Errorf("second replica initialised the store again:\n%s", second.stdout)
	}
	gw := gatewayURL(t, dir2)
	get := func() (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", gw+"/billing/v1/x", nil)
		req.Header.Set("Authorization", "Bearer "+iss.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := get(); status != 200 || body != "hello" {
		t.Fatalf("second gateway, before the revocation: %d %s", status, body)
	}
	if _, err := cl.RevokeToken(t.Context(), iss.ID); err != nil {
		t.Fatal(err)
	}
	poll(t, func() string {
		if status, body := get(); status != 401 || !strings.Contains(body, `"token_revoked"`) {
			return fmt.Sprintf("second gateway still answers %d %s", status, body)
		}
		return ""
	})
	for _, r := range []*running{second, first} {
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	}
	st, storage, err := OpenStore(t.Context(), dir2, dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := audit.New(storage, audit.Config{})
	defer l.Close()
	size, _, err := l.Verify(t.Context(), nil)
	if err != nil || size < 5 {
		t.Fatalf("Verify = %d records, %v", size, err)
	}
	if err := storage.CheckSearchColumns(t.Context(), size); err != nil {
		t.Fatal(err)
	}
}

// TestInitPostgresTwice: a PostgreSQL store holding an admin token is
// initialized, whatever data directory asks.
func TestInitPostgresTwice(t *testing.T) {
	dsn := pgtest.DSN(t)
	if _, _, err := Init(t.Context(), newDir(t), dsn, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(t.Context(), newDir(t), dsn, 0); !errors.Is(err, ErrInitialized) {
		t.Fatalf("second Init = %v, want ErrInitialized", err)
	}
}

// TestInitPostgresClaimed: while another process holds a fresh claim on
// the initialisation of an empty store, Init refuses rather than issue a
// second first admin token; a stale claim (its taker died) is taken over.
func TestInitPostgresClaimed(t *testing.T) {
	for _, tc := range []struct {
		name string
		age  time.Duration
		want error
	}{
		{"fresh", 0, errInitializing},
		{"stale", 2 * initStale, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.DSN(t)
			st, _, err := OpenStore(t.Context(), t.TempDir(), dsn, "")
			if err != nil {
				t.Fatal(err)
			}
			at := time.Now().Add(-tc.age)
			ok, err := st.Claim(t.Context(), initClaim, "other", at, at)
			st.Close()
			if !ok || err != nil {
				t.Fatalf("Claim = %v, %v", ok, err)
			}
			_, _, err = Init(t.Context(), newDir(t), dsn, 0)
			if !errors.Is(err, tc.want) { // errors.Is(nil, nil) is true
				t.Fatalf("Init = %v, want %v", err, tc.want)
			}
		})
	}
}
