package adminapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"latchkey/internal/adminapi"
)

// TestWebhooks: add returns the secret once; list and show never do;
// refusals are JSON with a reason word; remove is final.
func TestWebhooks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client(e.root)
	const full = "https://hooks.example.com/services/T0/B0/pathsecret?q=1"
	added, err := c.AddWebhook(ctx, adminapi.NewWebhook{URL: full, Events: []string{"token.revoked"}, Format: "slack"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(added.Secret, "whsec_") || !strings.HasPrefix(added.ID, "wh_") || added.Format != "slack" ||
		added.URL != full || len(added.URLFingerprint) != 8 {
		t.Fatalf("added %+v", added)
	}
	ws, err := c.Webhooks(ctx)
	if err != nil || len(ws) != 1 || ws[0].ID != added.ID || ws[0].Events[0] != "token.revoked" ||
		ws[0].URL != "https://hooks.example.com/…" || ws[0].URLFingerprint != added.URLFingerprint {
		t.Fatalf("Webhooks: %+v, %v", ws, err)
	}
	for _, path := range []string{"/v1/webhooks", "/v1/webhooks/" + added.ID, "/v1/webhooks/deliveries"} {
		status, body := call(t, e, "GET", path, e.root, "")
		if status != 200 || strings.Contains(body, added.Secret) || strings.Contains(body, "secret") || strings.Contains(body, "/services") {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
	}
	for _, tc := range []struct{ method, path, body, reason string }{
		{"POST", "/v1/webhooks", `{"url": "http://hooks.example.com/x"}`, "invalid_request"},
		{"POST", "/v1/webhooks", `{"url": "https://hooks.example.com/x", "format": "xml"}`, "invalid_request"},
		{"POST", "/v1/webhooks", `{"url": "https://hooks.example.com/x", "secret": "mine"}`, "invalid_request"},
		{"GET", "/v1/webhooks/deliveries?state=lost", "", "invalid_request"},
		{"GET", "/v1/webhooks/deliveries?limit=0", "", "invalid_request"},
		{"GET", "/v1/webhooks/deliveries?webhook=x", "", "invalid_request"},
		{"GET", "/v1/webhooks/wh_0000000000000000", "", "not_found"},
		{"DELETE", "/v1/webhooks/wh_0000000000000000", "", "not_found"},
		{"DELETE", "/v1/webhooks/nope", "", "invalid_request"},
	} {
		status, body := call(t, e, tc.method, tc.path, e.root, tc.body)
		var p adminapi.Problem
		if err := json.Unmarshal([]byte(body), &p); err != nil || p.Error != tc.reason || status < 400 {
			t.Errorf("%s %s %s: %d %s, want %s", tc.method, tc.path, tc.body, status, body, tc.reason)
		}
	}
	if status, body := call(t, e, "PUT", "/v1/webhooks/"+added.ID, e.root, ""); status != 405 || !strings.Contains(body, "method_not_allowed") {
		t.Errorf("PUT /v1/webhooks/ID: %d %s", status, body)
	}
	if _, err := c.RemoveWebhook(ctx, added.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.RemoveWebhook(ctx, added.ID)
	var ae *adminapi.APIError
	if !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("second remove: %v", err)
	}
	// A token with only read may list, not add.
	read := e.client(e.adminToken(t, "admin:webhooks:read"))
	if _, err := read.Webhooks(ctx); err != nil {
		t.Error(err)
	}
	if _, err := read.AddWebhook(ctx, adminapi.NewWebhook{URL: "https://hooks.example.com/y"}); !errors.As(err, &ae) || ae.Status != 403 {
		t.Errorf("add with read only: %v", err)
	}
}
