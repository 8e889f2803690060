package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"latchkey/internal/adminapi"
)

// TestServeFollowsOtherProcess: two serve processes on one data directory
// (one database file). A token used through the second's gateway, and so
// cached there, is refused by it soon after the first revokes it: the
// second follows the store's invalidation feed instead of trusting its
// cache for its minute.
func TestServeFollowsOtherProcess(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer up.Close()
	dir := newDir(t)
	first := start(t, testConfig(dir, &syncBuffer{}))
	_, iss := onboard(t, first, adminapi.NewService{Name: "billing", Upstream: up.URL}, "billing:read:/v1/**", "billing:GET:/v1/*")
	cl := &adminapi.Client{Addr: first.url, Token: adminToken(t, first.stdout.String())}

	// The second process writes its own URL files; wait for those.
	for _, name := range []string{addrFile, gatewayFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	second := start(t, testConfig(dir, &syncBuffer{}))
	gw := gatewayURL(t, dir)
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
}
