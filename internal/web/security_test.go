package web_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"latchkey/internal/adminapi"
	"latchkey/internal/web"
)

// browser is an HTTP client with a cookie jar that does not follow
// redirects.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// send makes a request; form, if not nil, is the urlencoded body.
func send(t *testing.T, c *http.Client, method, u string, form url.Values, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// signIn signs c in with tok and checks the session cookie's attributes.
func signIn(t *testing.T, c *http.Client, l live, tok string) {
	t.Helper()
	resp, body := send(t, c, "POST", l.admin+"/ui/login", url.Values{"token": {tok}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d %s", resp.StatusCode, body)
	}
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == web.CookieName {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/ui/" || len(ck.Value) != 64 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui/, 32 random bytes", ck)
	}
}

// fixture onboards alice with a grant and one live token, and returns
// the admin API client and the token.
func fixture(t *testing.T, l live) (*adminapi.Client, adminapi.IssuedToken) {
	t.Helper()
	echo(t, l)
	cl := &adminapi.Client{Addr: l.admin, Token: l.token}
	ctx := t.Context()
	if _, err := cl.AddContractor(ctx, adminapi.NewContractor{Name: "alice", Email: "a@example.com", Sponsor: "bob", Until: "10d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AddGrant(ctx, adminapi.NewGrant{Contractor: "alice", Scopes: []string{"echo:GET:/hello/**"}}); err != nil {
		t.Fatal(err)
	}
	iss, err := cl.IssueToken(ctx, adminapi.NewToken{Contractor: "alice", Scopes: []string{"echo:GET:/hello/**"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	return cl, iss
}

func TestCrossOriginPostRefused(t *testing.T) {
	l := serve(t)
	cl, iss := fixture(t, l)
	c := browser(t)
	signIn(t, c, l, l.token)
	onboard := url.Values{"name": {"mallory"}, "email": {"m@example.com"}, "sponsor": {"bob"}, "until": {"5d"}, "id": {iss.ID}}
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"Sec-Fetch-Site cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"Sec-Fetch-Site same-site", map[string]string{"Sec-Fetch-Site": "same-site"}},
		{"Origin mismatch", map[string]string{"Origin": "http://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/ui/contractors", "/ui/contractors/alice/offboard", "/ui/reports/revoke", "/ui/audit/verify", "/ui/login", "/ui/logout"} {
				resp, _ := send(t, c, "POST", l.admin+path, onboard, tc.hdr)
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("POST %s: %d, want 403", path, resp.StatusCode)
				}
			}
		})
	}
	cs, err := cl.Contractors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Name != "alice" || cs[0].Disabled {
		t.Fatalf("contractors after cross-origin posts: %+v, want alice only, still active", cs)
	}
	if ts, err := cl.Tokens(t.Context(), "alice", true); err != nil || len(ts) != 1 {
		t.Fatalf("alice's live tokens after cross-origin posts: %+v, %v; want her one", ts, err)
	}
	// The same session, same-origin, still works: the refusals were the
	// cross-origin defence, not a broken session.
	resp, body := send(t, c, "POST", l.admin+"/ui/contractors", onboard, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("same-origin onboard: %d %s", resp.StatusCode, body)
	}
}

func TestReadOnlyAdmin(t *testing.T) {
	l := serve(t)
	cl, iss := fixture(t, l)
	ctx := t.Context()
	ro, err := cl.IssueToken(ctx, adminapi.NewToken{Admin: true, TTL: "1h",
		Scopes: []string{"admin:contractors:read", "admin:tokens:read", "admin:audit:read", "admin:reports:read"}})
	if err != nil {
		t.Fatal(err)
	}
	c := browser(t)
	signIn(t, c, l, ro.Token)

	// No write control is rendered: the only forms that post are sign-out
	// and "Verify now" (a read: it needs admin:audit:read).
	posts := regexp.MustCompile(`(?i)<form[^>]*method="post"[^>]*action="([^"]*)"`)
	for _, path := range []string{"/ui/", "/ui/contractors", "/ui/contractors/alice", "/ui/tokens", "/ui/audit", "/ui/reports", "/ui/reports?idle=1s"} {
		resp, body := send(t, c, "GET", l.admin+path, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		for _, m := range posts.FindAllStringSubmatch(body, -1) {
			if m[1] != "/ui/logout" && m[1] != "/ui/audit/verify" {
				t.Errorf("GET %s renders a form posting to %s", path, m[1])
			}
		}
		if strings.Contains(body, `type="checkbox"`) {
			t.Errorf("GET %s renders a checkbox to select tokens", path)
		}
		for _, word := range []string{"Onboard", "Revoke", "Offboard", "Issue a token", "Grant scopes", "Rotate", "Requests"} {
			if strings.Contains(body, word) {
				t.Errorf("GET %s shows %q to a read-only admin", path, word)
			}
		}
	}

	// Crafted requests are refused, and change nothing.
	for _, tc := range []struct {
		method, path string
		form         url.Values
	}{
		{"POST", "/ui/contractors", url.Values{"name": {"mallory"}, "email": {"m@example.com"}, "sponsor": {"bob"}, "until": {"5d"}}},
		{"GET", "/ui/contractors/alice/offboard", nil},
		{"POST", "/ui/contractors/alice/offboard", url.Values{}},
		{"POST", "/ui/contractors/alice/grants", url.Values{"scopes": {"echo:GET:/**"}}},
		{"POST", "/ui/tokens", url.Values{"contractor": {"alice"}, "scopes": {"echo:GET:/hello/**"}, "ttl": {"1h"}}},
		{"POST", "/ui/tokens/" + iss.ID + "/revoke", url.Values{}},
		{"POST", "/ui/tokens/" + iss.ID + "/rotate", url.Values{}},
		{"GET", "/ui/requests", nil},
		{"POST", "/ui/reports/revoke", url.Values{"id": {iss.ID}}},
		{"POST", "/ui/grants/1/revoke", url.Values{}},
		{"POST", "/ui/requests/rq_AAAAAAAAAAAAAAAA/approve", url.Values{}},
		{"POST", "/ui/requests/rq_AAAAAAAAAAAAAAAA/deny", url.Values{"reason": {"no"}}},
	} {
		resp, body := send(t, c, tc.method, l.admin+tc.path, tc.form, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s: %d, want 403", tc.method, tc.path, resp.StatusCode)
		}
		if strings.Contains(body, "lk_") {
			t.Errorf("%s %s: the refusal shows a token", tc.method, tc.path)
		}
	}
	cs, err := cl.Contractors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Disabled {
		t.Errorf("contractors after refused posts: %+v", cs)
	}
	gs, err := cl.Grants(ctx, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 {
		t.Errorf("alice has %d grants after refused posts, want 1", len(gs))
	}
	ts, err := cl.Tokens(ctx, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].RevokedAt != nil {
		t.Errorf("alice's tokens after refused posts: %+v", ts)
	}

	// Page reads and refusals are in the audit log, as the read-only
	// admin's own requests.
	page, err := cl.AuditSearch(ctx, adminapi.AuditQuery{Action: "admin.request", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range page.Records {
		if r.Actor == ro.ID {
			seen[r.Method+" "+r.Path+" "+r.Decision+" "+r.Reason] = true
		}
	}
	for _, want := range []string{"POST /ui/login allow ", "GET /ui/contractors allow ", "GET /ui/audit allow ",
		"POST /ui/contractors deny forbidden", "POST /ui/tokens/" + iss.ID + "/revoke deny forbidden", "POST /ui/reports/revoke deny forbidden"} {
		if !seen[want] {
			t.Errorf("no audit record %q of the read-only admin; have %v", want, seen)
		}
	}
}

func TestNoPageShowsASecret(t *testing.T) {
	l := serve(t)
	_, before := fixture(t, l)
	c := browser(t)
	signIn(t, c, l, l.token)
	resp, body := send(t, c, "POST", l.admin+"/ui/tokens", url.Values{"contractor": {"alice"}, "scopes": {"echo:GET:/hello/**"}, "ttl": {"2h"}}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("issue: %d %s", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("issue page Cache-Control = %q, want no-store", cc)
	}
	issued := regexp.MustCompile(`lk_[0-9A-Za-z]+`).FindString(body)
	if issued == "" {
		t.Fatalf("the issue page shows no token:\n%s", body)
	}
	// Use it, so the audit log has a gateway record of it.
	if code, _ := call(t, l, issued, "/echo/hello/x"); code != http.StatusOK {
		t.Fatalf("gateway: %d", code)
	}
	secrets := map[string]string{"issued token": issued, "fixture token": before.Token, "admin token": l.token}
	for _, path := range []string{"/ui/", "/ui/login", "/ui/contractors", "/ui/contractors/alice", "/ui/contractors/alice/offboard",
		"/ui/tokens", "/ui/tokens?contractor=alice", "/ui/tokens?state=live", "/ui/audit", "/ui/audit?contractor=alice", "/ui/reports", "/ui/requests", "/ui/audit/0/proof", "/ui/audit/5/proof", "/ui/nope"} {
		_, body := send(t, c, "GET", l.admin+path, nil, nil)
		for what, s := range secrets {
			// The id part is public; the tail is secret.
			if strings.Contains(body, s[len(s)-20:]) {
				t.Errorf("GET %s shows the %s's secret", path, what)
			}
		}
	}
}

func TestSessionEndsWithItsToken(t *testing.T) {
	l := serve(t)
	cl := &adminapi.Client{Addr: l.admin, Token: l.token}
	second, err := cl.IssueToken(t.Context(), adminapi.NewToken{Admin: true, TTL: "1h", Scopes: []string{"admin:*"}})
	if err != nil {
		t.Fatal(err)
	}
	c := browser(t)
	signIn(t, c, l, second.Token)
	if resp, _ := send(t, c, "GET", l.admin+"/ui/", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("overview: %d", resp.StatusCode)
	}
	if _, err := cl.RevokeToken(t.Context(), second.ID); err != nil {
		t.Fatal(err)
	}
	resp, _ := send(t, c, "GET", l.admin+"/ui/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("overview after the admin token was revoked: %d to %q, want 303 to /ui/login", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = send(t, c, "POST", l.admin+"/ui/contractors", url.Values{"name": {"x"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("post after the admin token was revoked: %d, want 401", resp.StatusCode)
	}
}

func TestSignInRefusals(t *testing.T) {
	l := serve(t)
	_, iss := fixture(t, l)
	for name, tok := range map[string]string{"contractor token": iss.Token, "garbage": "lka_nope", "empty": ""} {
		c := browser(t)
		resp, body := send(t, c, "POST", l.admin+"/ui/login", url.Values{"token": {tok}}, nil)
		if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
			t.Errorf("%s: %d, cookies %v, want 401 and none", name, resp.StatusCode, resp.Cookies())
		}
		if tok != "" && strings.Contains(body, tok) {
			t.Errorf("%s: the refusal echoes the token", name)
		}
	}
	c := browser(t)
	signIn(t, c, l, l.token)
	if resp, _ := send(t, c, "POST", l.admin+"/ui/logout", url.Values{}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if resp, _ := send(t, c, "GET", l.admin+"/ui/", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("overview after sign-out: %d, want 303", resp.StatusCode)
	}
}

// TestLabels checks that every form control of every page has a label, and
// that every action is a <button>.
func TestLabels(t *testing.T) {
	l := serve(t)
	fixture(t, l)
	c := browser(t)
	signIn(t, c, l, l.token)
	control := regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	id := regexp.MustCompile(`\bid="([^"]+)"`)
	pages := []string{"/ui/", "/ui/contractors", "/ui/contractors/alice", "/ui/contractors/alice/offboard", "/ui/tokens",
		"/ui/requests", "/ui/reports", "/ui/audit", "/ui/audit/0/proof"}
	for _, path := range pages {
		_, body := send(t, c, "GET", l.admin+path, nil, nil)
		for _, m := range control.FindAllString(body, -1) {
			if strings.Contains(m, `type="hidden"`) {
				continue
			}
			ids := id.FindStringSubmatch(m)
			if ids == nil || !strings.Contains(body, `<label for="`+ids[1]+`"`) {
				t.Errorf("GET %s: %s has no label", path, m)
			}
		}
		if strings.Contains(body, `type="submit"`) && strings.Contains(body, `<input type="submit"`) {
			t.Errorf("GET %s: a submit input, not a <button>", path)
		}
	}
	_, body := send(t, browser(t), "GET", l.admin+"/ui/login", nil, nil)
	if !strings.Contains(body, `<label for="token"`) {
		t.Error("the sign-in page's token field has no label")
	}
}
