package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"latchkey/internal/access"
)

// TestPrivateHeaders checks that a service's hop-private headers never
// reach it, and that other headers do.
func TestPrivateHeaders(t *testing.T) {
	e := newEnv(t)
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer up.Close()
	if _, err := e.a.AddService(context.Background(), root, "crm", up.URL, nil, "cookie", "X-Internal-User"); err != nil {
		t.Fatal(err)
	}
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"crm:GET:/**"}})
	r := e.send(t, "GET", "/crm/x", "Bearer "+text, "Cookie: session=abc", "x-internal-user: root", "X-Other: kept")
	if r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	if got["Cookie"] != nil || got["X-Internal-User"] != nil || got.Get("X-Other") != "kept" {
		t.Fatalf("upstream headers Cookie %q, X-Internal-User %q, X-Other %q; want none, none, kept",
			got["Cookie"], got["X-Internal-User"], got.Get("X-Other"))
	}
}

// TestPrivateHeadersRefused checks the service's header list is validated.
func TestPrivateHeadersRefused(t *testing.T) {
	e := newEnv(t)
	for _, bad := range []string{"", "Bad Header", "X-Evil\r\nInjected: 1", "X:Colon"} {
		if _, err := e.a.AddService(context.Background(), root, "crm", e.upURL, nil, bad); access.ReasonOf(err) != access.ReasonInvalid {
			t.Errorf("private header %q: %v, want invalid", bad, err)
		}
	}
}

// TestCredentialNotEchoed checks that an upstream echoing its credential
// in a response header, or in a redirect, does not hand it to the client.
func TestCredentialNotEchoed(t *testing.T) {
	e := newEnv(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
		w.Header().Set("Location", "https://elsewhere.test/?key="+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		w.Header().Set("X-Safe", "fine")
		w.WriteHeader(http.StatusFound)
	}))
	defer up.Close()
	creds := []access.Header{{Name: "Authorization", Value: "Bearer echo-secret-1234"}}
	if _, err := e.a.AddService(context.Background(), root, "echo", up.URL, creds); err != nil {
		t.Fatal(err)
	}
	text, _ := e.issue(t, access.IssueRequest{Scopes: []string{"echo:GET:/**"}})
	r := e.send(t, "GET", "/echo/x", "Bearer "+text)
	if r.status != http.StatusFound {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	for name, vs := range r.header {
		if strings.Contains(strings.Join(vs, " "), "echo-secret-1234") {
			t.Errorf("credential reached the client in %s", name)
		}
	}
	if r.header.Get("X-Safe") != "fine" {
		t.Errorf("an innocent header was removed: X-Safe %q", r.header.Get("X-Safe"))
	}
}
