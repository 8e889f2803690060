package scope

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSet(t *testing.T) {
	set, err := ParseSet([]string{
		"billing:HEAD,GET,OPTIONS:/v1/**",
		"admin:tokens:read",
		"billing:read:/v1/**", // same scope as the first
		"hr:GET:/people/*",
		"admin:tokens:read",
		"admin:*:*",
		"admin:*",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"billing:read:/v1/**", "admin:tokens:read", "hr:GET:/people/*", "admin:*"}
	if diff := cmp.Diff(want, set.Strings()); diff != "" {
		t.Errorf("ParseSet(...).Strings() (-want +got):\n%s", diff)
	}
}

func TestParseSetRejects(t *testing.T) {
	tooMany := make([]string, maxSetLen+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("s%d:GET:/", i)
	}
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"nil", nil, "no scopes"},
		{"empty", []string{}, "no scopes"},
		{"bad member", []string{"b:GET:/", "b:get:/x", "c:TRACE:/"}, `invalid scope "b:get:/x"`},
		{"empty member", []string{"b:GET:/", ""}, `invalid scope "": empty scope`},
		{"too many", tooMany, "257 scopes, at most 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := ParseSet(tt.in)
			if !errors.Is(err, ErrSyntax) || set != nil {
				t.Fatalf("ParseSet = %v, %v; want nil and an error wrapping ErrSyntax", set, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSet error %q does not contain %q", err, tt.want)
			}
		})
	}
	if _, err := ParseSet(tooMany[:maxSetLen]); err != nil {
		t.Errorf("ParseSet of %d scopes: %v", maxSetLen, err)
	}
}

func TestSet(t *testing.T) {
	set := mustSet(t, "billing:read:/v1/**", "billing:POST:/v1/invoices/*/notes", "*:GET:/health", "admin:tokens:*")
	matches := []struct {
		service, method, path, want string
	}{
		{"billing", "GET", "/v1/invoices/7", "billing:read:/v1/**"},
		{"billing", "POST", "/v1/invoices/7/notes", "billing:POST:/v1/invoices/*/notes"},
		{"billing", "GET", "/health", "*:GET:/health"},
		{"hr", "GET", "/health", "*:GET:/health"},
		{"billing", "POST", "/v1/invoices/7", ""},
		{"hr", "GET", "/v1/x", ""},
	}
	for _, m := range matches {
		sc, ok := set.Match(m.service, m.method, m.path)
		if got := sc.String(); got != m.want || ok != (m.want != "") {
			t.Errorf("Match(%q, %q, %q) = %q, %v; want %q", m.service, m.method, m.path, got, ok, m.want)
		}
	}
	covers := map[string]bool{
		"billing:GET:/v1/x/**":              true,
		"billing:GET,POST:/v1/x":            false, // only the two members together
		"billing:POST:/v1/invoices/1/notes": true,
		"hr:HEAD:/health":                   false,
		"admin:tokens:write":                true,
		"admin:grants:read":                 false,
		"admin:*":                           false,
	}
	for s, want := range covers {
		if got := set.Covers(MustParse(s)); got != want {
			t.Errorf("Covers(%q) = %v, want %v", s, got, want)
		}
	}
	if !set.AllowsAdmin("tokens", "write") || set.AllowsAdmin("grants", "read") {
		t.Error("AllowsAdmin disagrees with admin:tokens:*")
	}
	var empty Set
	if _, ok := empty.Match("b", "GET", "/"); ok || empty.Covers(MustParse("b:GET:/")) || empty.AllowsAdmin("tokens", "read") {
		t.Error("empty Set allowed something")
	}
}

func mustSet(t testing.TB, ss ...string) Set {
	t.Helper()
	set, err := ParseSet(ss)
	if err != nil {
		t.Fatal(err)
	}
	return set
}
