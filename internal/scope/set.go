package scope

import (
	"fmt"
)

// maxSetLen is the most scopes ParseSet accepts.
const maxSetLen = 256

// Set is a list of scopes, such as a token's or a grant's. A request or
// operation is allowed when any member allows it.
type Set []Scope

// ParseSet parses each string with Parse and drops later exact duplicates
// (scopes with the same canonical form), keeping the first. It rejects an
// empty list and lists of more than 256 scopes; on error it returns the
// first bad scope's Parse error, which names that scope. Every error wraps
// ErrSyntax.
func ParseSet(ss []string) (Set, error) {
	switch {
	case len(ss) == 0:
		return nil, fmt.Errorf("%w set: no scopes", ErrSyntax)
	case len(ss) > maxSetLen:
		return nil, fmt.Errorf("%w set: %d scopes, at most %d", ErrSyntax, len(ss), maxSetLen)
	}
	set := make(Set, 0, len(ss))
	seen := make(map[string]bool, len(ss))
	for _, s := range ss {
		sc, err := Parse(s)
		if err != nil {
			return nil, err
		}
		if c := sc.String(); !seen[c] {
			seen[c] = true
			set = append(set, sc)
		}
	}
	return set, nil
}

// Strings returns the canonical text of each member, in order.
func (set Set) Strings() []string {
	ss := make([]string, len(set))
	for i := range set {
		ss[i] = set[i].String()
	}
	return ss
}

// Match returns the first member that matches the gateway request (see
// Scope.Match) and true, or the zero Scope and false. It does not allocate.
func (set Set) Match(service, method, path string) (Scope, bool) {
	for i := range set {
		if set[i].match(service, method, path) {
			return set[i], true
		}
	}
	return Scope{}, false
}

// Covers reports whether some member covers o (see Scope.Covers). A scope
// that only several members cover together is not covered: callers name o
// and report ErrNotCovered.
func (set Set) Covers(o Scope) bool {
	for i := range set {
		if set[i].Covers(o) {
			return true
		}
	}
	return false
}

// AllowsAdmin reports whether some member permits action on resource (see
// Scope.AllowsAdmin).
func (set Set) AllowsAdmin(resource, action string) bool {
	for i := range set {
		if set[i].AllowsAdmin(resource, action) {
			return true
		}
	}
	return false
}
