package scope

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that it fails only with
// ErrSyntax, and that the canonical form re-parses to an equal scope and is
// a fixed point.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrSyntax", s, err)
			}
			return
		}
		c := sc.String()
		again, err := Parse(c)
		if err != nil {
			t.Fatalf("Parse(%q) = %v; canonical form of %q does not parse", c, err, s)
		}
		if !equal(sc, again) {
			t.Fatalf("Parse(%q) = %#v, want %#v (from %q)", c, again, sc, s)
		}
		if again.String() != c {
			t.Fatalf("String is not idempotent: %q -> %q", c, again.String())
		}
		if !sc.Covers(sc) {
			t.Fatalf("%q does not cover itself", c)
		}
	})
}

// FuzzCovers checks that Covers is reflexive and sound: when a covers b,
// every sample request or admin operation b allows, a allows.
func FuzzCovers(f *testing.F) {
	f.Fuzz(func(t *testing.T, as, bs string) {
		a, errA := Parse(as)
		b, errB := Parse(bs)
		if errA != nil || errB != nil {
			return
		}
		if !a.Covers(a) || !b.Covers(b) {
			t.Fatalf("Covers is not reflexive for %v or %v", a, b)
		}
		for _, r := range sampleRequests(b) {
			if !b.Match(r.service, r.method, r.path) {
				t.Fatalf("%v does not match its own sample request %v", b, r)
			}
		}
		if !a.Covers(b) {
			return
		}
		for _, r := range append(sampleRequests(a), sampleRequests(b)...) {
			if b.Match(r.service, r.method, r.path) && !a.Match(r.service, r.method, r.path) {
				t.Fatalf("%v covers %v, but only the latter matches %v", a, b, r)
			}
		}
		for _, res := range adminResources {
			for _, act := range adminActions {
				if b.AllowsAdmin(res, act) && !a.AllowsAdmin(res, act) {
					t.Fatalf("%v covers %v, but only the latter allows %s %s", a, b, act, res)
				}
			}
		}
	})
}

// request is a gateway request for Scope.Match.
type request struct {
	service, method, path string
}

// sampleRequests returns requests that s matches: its service ("x" for
// "*"), each of its methods, and its path with "*" replaced by "x" and a
// final "**" by nothing, "x/y" or an empty segment. Admin scopes have none.
func sampleRequests(s Scope) []request {
	if s.admin {
		return nil
	}
	service := s.service
	if service == "*" {
		service = "x"
	}
	var out []request
	for i, m := range methodNames {
		if s.methods&(1<<i) == 0 {
			continue
		}
		for _, p := range samplePaths(s.segs) {
			out = append(out, request{service, m, p})
		}
	}
	return out
}

// samplePaths returns concrete request paths matched by the pattern segs.
func samplePaths(segs []string) []string {
	var b strings.Builder
	for _, seg := range segs {
		switch seg {
		case "**":
			base := b.String()
			return []string{orRoot(base), base + "/x/y", base + "/"}
		case "*":
			b.WriteString("/x")
		default:
			b.WriteString("/" + seg)
		}
	}
	return []string{orRoot(b.String())}
}

// orRoot returns p, or "/" if p is empty.
func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
