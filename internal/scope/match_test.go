package scope

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		scope, service, method, path string
		want                         bool
	}{
		// The root pattern matches only "/".
		{"b:GET:/", "b", "GET", "/", true},
		{"b:GET:/", "b", "GET", "/x", false},
		{"b:GET:/", "b", "GET", "//", false},
		{"b:GET:/", "b", "GET", "", false},
		// "*" is exactly one non-empty segment.
		{"b:GET:/*", "b", "GET", "/a", true},
		{"b:GET:/*", "b", "GET", "/", false},
		{"b:GET:/*", "b", "GET", "/a/", false},
		{"b:GET:/*", "b", "GET", "/a/b", false},
		{"b:GET:/a/*/c", "b", "GET", "/a/x/c", true},
		{"b:GET:/a/*/c", "b", "GET", "/a//c", false},
		{"b:GET:/a/*/c", "b", "GET", "/a/x/c/", false},
		{"b:GET:/a/*/c", "b", "GET", "/a/x", false},
		// "**" is any number of segments, including none and empty ones.
		{"b:GET:/a/**", "b", "GET", "/a", true},
		{"b:GET:/a/**", "b", "GET", "/a/", true},
		{"b:GET:/a/**", "b", "GET", "/a/b/c", true},
		{"b:GET:/a/**", "b", "GET", "/a//b", true},
		{"b:GET:/a/**", "b", "GET", "/ab", false},
		{"b:GET:/a/**", "b", "GET", "/", false},
		{"b:GET:/a/**", "b", "GET", "/b/a", false},
		{"b:GET:/**", "b", "GET", "/", true},
		{"b:GET:/**", "b", "GET", "/x/y/", true},
		{"b:GET:/*/**", "b", "GET", "/", false},
		{"b:GET:/*/**", "b", "GET", "/x", true},
		// Literals compare exactly, still escaped, without a trailing slash.
		{"b:GET:/a", "b", "GET", "/a", true},
		{"b:GET:/a", "b", "GET", "/a/", false},
		{"b:GET:/a", "b", "GET", "/A", false},
		{"b:GET:/a", "b", "GET", "a", false},
		{"b:GET:/a%20b", "b", "GET", "/a%20b", true},
		{"b:GET:/a%20b", "b", "GET", "/a b", false},
		{"b:GET:/a:b", "b", "GET", "/a:b", true},
		// Methods are case-sensitive; aliases expand.
		{"b:GET:/", "b", "get", "/", false},
		{"b:read:/", "b", "HEAD", "/", true},
		{"b:read:/", "b", "OPTIONS", "/", true},
		{"b:read:/", "b", "POST", "/", false},
		{"b:write:/", "b", "DELETE", "/", true},
		{"b:write:/", "b", "GET", "/", false},
		{"b:*:/", "b", "TRACE", "/", false},
		{"b:*:/", "b", "", "/", false},
		// Services.
		{"b:GET:/", "c", "GET", "/", false},
		{"b:GET:/", "B", "GET", "/", false},
		{"*:GET:/", "billing", "GET", "/", true},
		{"*:GET:/", "c", "GET", "/", true},
		// Admin scopes never match requests.
		{"admin:*", "admin", "GET", "/", false},
		{"admin:*", "billing", "GET", "/", false},
		{"admin:tokens:read", "admin", "GET", "/tokens", false},
	}
	for _, tt := range tests {
		sc := MustParse(tt.scope)
		if got := sc.Match(tt.service, tt.method, tt.path); got != tt.want {
			t.Errorf("%q.Match(%q, %q, %q) = %v, want %v", tt.scope, tt.service, tt.method, tt.path, got, tt.want)
		}
	}
	if (Scope{}).Match("", "GET", "/") {
		t.Error("the zero Scope matched a request")
	}
}

func TestAllowsAdmin(t *testing.T) {
	tests := []struct {
		scope, resource, action string
		want                    bool
	}{
		{"admin:*", "tokens", "read", true},
		{"admin:*", "policy", "write", true},
		{"admin:*", "*", "*", true},
		{"admin:tokens:*", "tokens", "read", true},
		{"admin:tokens:*", "tokens", "write", true},
		{"admin:tokens:*", "grants", "read", false},
		{"admin:tokens:write", "tokens", "read", false},
		{"admin:tokens:write", "tokens", "write", true},
		{"admin:tokens:read", "tokens", "write", false},
		{"admin:*:read", "audit", "read", true},
		{"admin:*:read", "audit", "write", false},
		{"admin:tokens:read", "tokens", "*", false},
		{"admin:*", "users", "read", false},
		{"admin:*", "tokens", "delete", false},
		{"admin:*", "Tokens", "read", false},
		{"*:*:/**", "tokens", "read", false},
		{"admin:*:*", "contractors", "write", true},
	}
	for _, tt := range tests {
		sc := MustParse(tt.scope)
		if got := sc.AllowsAdmin(tt.resource, tt.action); got != tt.want {
			t.Errorf("%q.AllowsAdmin(%q, %q) = %v, want %v", tt.scope, tt.resource, tt.action, got, tt.want)
		}
	}
	if (Scope{}).AllowsAdmin("tokens", "read") {
		t.Error("the zero Scope allowed an admin operation")
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	set := benchSet(t)
	allocs := testing.AllocsPerRun(100, func() {
		set.Match("svc9", "DELETE", "/v1/things/123/notes/456")
		set.Match("nope", "GET", "/a/b/c/d/e")
	})
	if allocs != 0 {
		t.Errorf("Set.Match allocates %v times per run, want 0", allocs)
	}
}
