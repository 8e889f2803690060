package scope

import (
	"math/bits"
	"testing"
)

func TestCovers(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		// Paths.
		{"b:GET:/a/**", "b:GET:/a/*", true},
		{"b:GET:/a/*", "b:GET:/a/**", false},
		{"b:GET:/a/**", "b:GET:/a", true},
		{"b:GET:/a", "b:GET:/a/**", false},
		{"b:GET:/**", "b:GET:/", true},
		{"b:GET:/**", "b:GET:/a/*/c/**", true},
		{"b:GET:/*", "b:GET:/", false},
		{"b:GET:/", "b:GET:/*", false},
		{"b:GET:/", "b:GET:/**", false},
		{"b:GET:/", "b:GET:/", true},
		{"b:GET:/*", "b:GET:/a", true},
		{"b:GET:/a", "b:GET:/*", false},
		{"b:GET:/a/*", "b:GET:/a/b", true},
		{"b:GET:/a/*", "b:GET:/a/b/c", false},
		{"b:GET:/a/b", "b:GET:/a/c", false},
		{"b:GET:/*/b", "b:GET:/a/*", false},
		{"b:GET:/*/*", "b:GET:/a/*", true},
		{"b:GET:/*/**", "b:GET:/a/**", true},
		{"b:GET:/*/**", "b:GET:/**", false},
		{"b:GET:/a/**", "b:GET:/a/b/**", true},
		{"b:GET:/a/b/**", "b:GET:/a/**", false},
		{"b:GET:/a/*/**", "b:GET:/a/**", false},
		{"b:GET:/a/**", "b:GET:/b/**", false},
		// Methods.
		{"b:read:/", "b:GET,HEAD:/", true},
		{"b:GET:/", "b:read:/", false},
		{"b:*:/", "b:write:/", true},
		{"b:write:/", "b:*:/", false},
		{"b:GET,POST:/", "b:POST:/", true},
		{"b:read:/", "b:POST:/", false},
		// Services.
		{"*:GET:/", "billing:GET:/", true},
		{"billing:GET:/", "*:GET:/", false},
		{"billing:GET:/", "hr:GET:/", false},
		{"*:*:/**", "*:*:/**", true},
		// Admin.
		{"admin:*", "admin:tokens:read", true},
		{"admin:*", "admin:*:*", true},
		{"admin:tokens:*", "admin:tokens:read", true},
		{"admin:tokens:*", "admin:tokens:write", true},
		{"admin:tokens:*", "admin:grants:read", false},
		{"admin:tokens:read", "admin:tokens:*", false},
		{"admin:tokens:write", "admin:tokens:read", false},
		{"admin:*:read", "admin:audit:read", true},
		{"admin:*:read", "admin:*:write", false},
		{"admin:*:read", "admin:*", false},
		{"admin:audit:read", "admin:*:read", false},
		// Resource and admin scopes never cover each other.
		{"*:*:/**", "admin:tokens:read", false},
		{"admin:*", "*:*:/**", false},
		{"admin:*", "billing:GET:/", false},
	}
	for _, tt := range tests {
		a, b := MustParse(tt.a), MustParse(tt.b)
		if got := a.Covers(b); got != tt.want {
			t.Errorf("%q.Covers(%q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	all := MustParse("*:*:/**")
	if all.Covers(Scope{}) || (Scope{}).Covers(all) || (Scope{}).Covers(Scope{}) {
		t.Error("Covers involving the zero Scope reported true")
	}
}

// genScopes returns every combination of a small set of scope parts, plus
// every admin scope.
func genScopes() []Scope {
	services := []string{"*", "billing", "hr"}
	methods := []string{"*", "read", "write", "GET", "GET,HEAD", "POST", "GET,POST"}
	paths := []string{"/", "/**", "/*", "/a", "/b", "/a/*", "/a/**", "/a/b", "/*/b",
		"/a/*/b", "/a/b/**", "/*/**", "/*/*", "/a/*/**", "/*/a/**"}
	var out []Scope
	for _, s := range services {
		for _, m := range methods {
			for _, p := range paths {
				out = append(out, MustParse(s+":"+m+":"+p))
			}
		}
	}
	for _, r := range adminResources {
		for _, a := range adminActions {
			out = append(out, MustParse("admin:"+r+":"+a))
		}
	}
	return out
}

// probe is one request or admin operation to try against a scope.
type probe func(Scope) bool

// genProbes returns requests for every service, method and path up to four
// segments over the literals of genScopes plus a fresh one, with and without
// a trailing slash, and every concrete admin operation. It is rich enough
// that a scope which does not cover another always misses one of the other's
// probes.
func genProbes() []probe {
	paths := []string{"/"}
	for prev := []string{""}; len(prev[0]) < 8; {
		var next []string
		for _, p := range prev {
			for _, seg := range []string{"a", "b", "x"} {
				next = append(next, p+"/"+seg)
			}
		}
		for _, p := range next {
			paths = append(paths, p, p+"/")
		}
		prev = next
	}
	var out []probe
	for _, svc := range []string{"billing", "hr", "zz"} {
		for _, m := range append(methodNames[:], "TRACE") {
			for _, p := range paths {
				out = append(out, func(s Scope) bool { return s.Match(svc, m, p) })
			}
		}
	}
	for _, r := range adminResources[:len(adminResources)-1] {
		for _, a := range []string{"read", "write"} {
			out = append(out, func(s Scope) bool { return s.AllowsAdmin(r, a) })
		}
	}
	return out
}

// bitset records which probes a scope allows.
type bitset []uint64

func allowed(s Scope, probes []probe) bitset {
	b := make(bitset, (len(probes)+63)/64)
	for i, p := range probes {
		if p(s) {
			b[i/64] |= 1 << (i % 64)
		}
	}
	return b
}

// subset reports whether b allows nothing that a does not, and returns the
// index of a probe that shows otherwise.
func (a bitset) subset(b bitset) (bool, int) {
	for i := range b {
		if extra := b[i] &^ a[i]; extra != 0 {
			return false, i*64 + bits.TrailingZeros64(extra)
		}
	}
	return true, -1
}

// TestCoversProperty checks, for every pair of generated scopes, that
// a.Covers(b) holds exactly when every probe allowed by b is allowed by a.
func TestCoversProperty(t *testing.T) {
	scopes, probes := genScopes(), genProbes()
	sets := make([]bitset, len(scopes))
	for i, s := range scopes {
		sets[i] = allowed(s, probes)
	}
	for i, a := range scopes {
		for j, b := range scopes {
			sub, witness := sets[i].subset(sets[j])
			if got := a.Covers(b); got != sub {
				t.Errorf("%v.Covers(%v) = %v, but allowed-probe subset = %v (witness probe %d)",
					a, b, got, sub, witness)
			}
		}
	}
}
