package scope

import (
	"errors"
	"fmt"
	"strings"
)

// maxLen is the longest scope text Parse accepts, in bytes.
const maxLen = 512

var (
	// ErrSyntax is wrapped by every error from Parse and ParseSet. The full
	// message names the scope and the part that is wrong, for example
	//	invalid scope "billing:GET:/a//b": empty path segment
	ErrSyntax = errors.New("invalid scope")

	// ErrNotCovered is for callers to wrap when a scope is refused because
	// no scope of a grant covers it (see Scope.Covers and Set.Covers).
	ErrNotCovered = errors.New("scope not covered")
)

// Scope is one parsed scope: either a resource scope (SERVICE:METHODS:PATH)
// or an admin scope (admin:RESOURCE:ACTION). Obtain one from Parse; the zero
// Scope is not valid: it matches, allows and covers nothing, is covered by
// nothing, and its String is "".
type Scope struct {
	admin    bool
	service  string   // "*" or a service name; "admin" for admin scopes
	methods  Methods  // resource scopes only
	segs     []string // resource scopes only; nil for the root pattern "/"
	resource string   // admin scopes only: an admin resource or "*"; "request" for the request scope
	action   string   // admin scopes only: "read", "write" or "*"
	request  bool     // the request scope latchkey:request (request.go)
}

// adminResources lists the valid RESOURCE parts of an admin scope.
var adminResources = []string{"contractors", "services", "grants", "tokens", "reports", "audit", "policy", "webhooks", "requests", "approvers", "*"}

// adminActions lists the valid ACTION parts of an admin scope.
var adminActions = []string{"read", "write", "*"}

// Parse parses a scope in the grammar of the package documentation. It
// accepts non-canonical method lists and "admin:*:*" and rejects everything
// else outside the grammar with an error wrapping ErrSyntax.
func Parse(s string) (Scope, error) {
	if len(s) > maxLen {
		return Scope{}, fmt.Errorf("%w %q... (%d bytes): longer than %d bytes",
			ErrSyntax, s[:32], len(s), maxLen)
	}
	sc, err := parse(s)
	if err != nil {
		return Scope{}, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
	}
	return sc, nil
}

// parse parses s, whose length has been checked, returning errors that do
// not repeat s.
func parse(s string) (Scope, error) {
	if s == "" {
		return Scope{}, errors.New("empty scope")
	}
	service, rest, ok := strings.Cut(s, ":")
	if service == "admin" {
		return parseAdmin(rest, ok)
	}
	if service == reservedService {
		return parseRequest(rest, ok)
	}
	if err := checkService(service); err != nil {
		return Scope{}, err
	}
	if !ok {
		return Scope{}, errors.New("missing methods and path")
	}
	return parseResource(s, service, rest)
}

// parseResource parses the METHODS:PATH rest of the resource scope s.
func parseResource(s, service, rest string) (Scope, error) {
	methods, path, ok := strings.Cut(rest, ":")
	if !ok {
		return Scope{}, errors.New("missing path")
	}
	m, err := parseMethods(methods)
	if err != nil {
		return Scope{}, err
	}
	if n := len(s) - len(methods) + len(m.String()); n > maxLen {
		return Scope{}, fmt.Errorf("canonical form (methods %q) is %d bytes, longer than %d",
			m.String(), n, maxLen)
	}
	segs, err := parsePath(path)
	if err != nil {
		return Scope{}, err
	}
	return Scope{service: service, methods: m, segs: segs}, nil
}

// checkService checks the SERVICE part of a resource scope.
func checkService(service string) error {
	switch {
	case service == "":
		return errors.New("missing service")
	case service == "*" || ValidServiceName(service):
		return nil
	}
	return fmt.Errorf("invalid service name %q (want [a-z][a-z0-9-]{0,62})", service)
}

// parseAdmin parses what follows "admin:" in an admin scope; colon reports
// whether there was a colon after "admin".
func parseAdmin(rest string, colon bool) (Scope, error) {
	if !colon || rest == "" {
		return Scope{}, errors.New(`missing admin resource ("admin" is reserved for admin:RESOURCE:ACTION)`)
	}
	if rest == "*" {
		return Scope{admin: true, service: "admin", resource: "*", action: "*"}, nil
	}
	resource, action, ok := strings.Cut(rest, ":")
	if !contains(adminResources, resource) {
		return Scope{}, fmt.Errorf("unknown admin resource %q (\"admin\" is reserved for admin:RESOURCE:ACTION)", resource)
	}
	switch {
	case !ok || action == "":
		return Scope{}, fmt.Errorf("missing admin action after %q", resource)
	case strings.Contains(action, ":"):
		return Scope{}, fmt.Errorf("too many parts in admin scope (%q after the action)", action[strings.IndexByte(action, ':'):])
	case !contains(adminActions, action):
		return Scope{}, fmt.Errorf("unknown admin action %q (want read, write or *)", action)
	}
	return Scope{admin: true, service: "admin", resource: resource, action: action}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ValidServiceName reports whether s may name a service: it matches
// ^[a-z][a-z0-9-]{0,62}$ and is not "admin", which is reserved for admin
// scopes, nor "latchkey", which is reserved for the request scope
// (request.go). "*" is not a service name.
func ValidServiceName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] < 'a' || s[0] > 'z' || s == "admin" || s == reservedService {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// MustParse is like Parse but panics on error. It is for tests and
// constants.
func MustParse(s string) Scope {
	sc, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sc
}

// String returns the canonical text of s (see the package documentation).
// Parse(s.String()) returns a Scope equal to s.
func (s Scope) String() string {
	switch {
	case s.admin && s.resource == "*" && s.action == "*":
		return "admin:*"
	case s.admin:
		return "admin:" + s.resource + ":" + s.action
	case s.request:
		return Request
	case s.service == "":
		return ""
	}
	return s.service + ":" + s.methods.String() + ":" + joinPath(s.segs)
}

// Service returns the SERVICE part: a service name, "*" for every service,
// or "admin" for admin scopes.
func (s Scope) Service() string { return s.service }

// IsAdmin reports whether s is an admin scope.
func (s Scope) IsAdmin() bool { return s.admin }

// Methods returns the methods of a resource scope; it is empty for admin
// scopes.
func (s Scope) Methods() Methods { return s.methods }

// Path returns the canonical path pattern of a resource scope, such as "/"
// or "/v1/invoices/**"; it is "" for admin scopes and the zero Scope.
func (s Scope) Path() string {
	if s.admin || s.request || s.service == "" {
		return ""
	}
	return joinPath(s.segs)
}

// valid reports whether s came from Parse rather than being the zero Scope.
func (s *Scope) valid() bool { return s.service != "" }

// Match reports whether a gateway request for service, method and escaped
// path (a path already validated by the gateway, starting with "/") is
// allowed. Admin scopes never match requests. Methods are case-sensitive.
//
// Match does not itself refuse ambiguous paths: "*" and "**" match any
// segment text the gateway lets through. It does not allocate.
func (s Scope) Match(service, method, path string) bool {
	return s.match(service, method, path)
}

// match is Match without copying s, for Set.Match.
func (s *Scope) match(service, method, path string) bool {
	return !s.admin && !s.request && s.valid() &&
		(s.service == "*" || s.service == service) &&
		s.methods.Has(method) &&
		matchPath(s.segs, path)
}

// AllowsAdmin reports whether an admin scope permits action on resource.
// Each part of the scope must be "*" or equal to the argument, so write does
// NOT imply read. Arguments outside the admin grammar, and resource scopes,
// allow nothing.
func (s Scope) AllowsAdmin(resource, action string) bool {
	return s.admin &&
		contains(adminResources, resource) && contains(adminActions, action) &&
		wildcard(s.resource, resource) && wildcard(s.action, action)
}

// Covers reports whether every request (or admin operation) allowed by o is
// allowed by s. A resource scope never covers an admin scope nor the reverse,
// and no scope covers or is covered by the zero Scope.
func (s Scope) Covers(o Scope) bool {
	switch {
	case !s.valid() || !o.valid() || s.admin != o.admin:
		return false
	case s.request || o.request:
		return s.request && o.request
	case s.admin:
		return wildcard(s.resource, o.resource) && wildcard(s.action, o.action)
	}
	return wildcard(s.service, o.service) &&
		o.methods&^s.methods == 0 &&
		coversPath(s.segs, o.segs)
}

// wildcard reports whether pattern, which is "*" or a literal, matches v.
func wildcard(pattern, v string) bool {
	return pattern == "*" || pattern == v
}
