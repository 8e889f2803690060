package kube

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"latchkey/internal/scope"
)

// A Rule is access to a Kubernetes namespace in Kubernetes terms, as
// "grant add --k8s SERVICE --namespace NS --verbs V,... [--resources
// R,...]" takes it. Scopes expands it into the path scopes the gateway
// enforces; Describe reads one such scope back.
type Rule struct {
	Namespace string
	// Resources are the resources allowed; empty means every resource of
	// every API group in the namespace (but no subresource).
	Resources []Resource
	// Verbs are the allowed verbs, in the order of the verbs table.
	Verbs []string
}

// Resource names a resource: Name is its plural lowercase name ("pods") or
// "*" (any, only as read back by Describe), Group its API group ("" for the
// core group, "apps", "*" for any), Subresource a subresource ("log",
// "exec") or "". Its text form is kubectl's: NAME[.GROUP][/SUBRESOURCE],
// e.g. "pods", "deployments.apps", "pods/log".
type Resource struct {
	Name, Group, Subresource string
}

func (r Resource) String() string {
	s := r.Name
	if r.Group != "" {
		s += "." + r.Group
	}
	if r.Subresource != "" {
		s += "/" + r.Subresource
	}
	return s
}

// Path shapes a verb applies to.
const (
	collection = iota // .../RESOURCE
	object            // .../RESOURCE/NAME
)

// verbs maps each verb to its HTTP method and the path shape it acts on,
// as the API server does (a watch is a GET of the collection with
// ?watch=1; the query is not part of a scope, so list and watch are the
// same scope and granting one grants the other).
var verbs = []verb{
	{"get", "GET", object},
	{"list", "GET", collection},
	{"watch", "GET", collection},
	{"create", "POST", collection},
	{"update", "PUT", object},
	{"patch", "PATCH", object},
	{"delete", "DELETE", object},
	{"deletecollection", "DELETE", collection},
}

// verb is one row of verbs.
type verb struct {
	name   string
	method string
	shape  int
}

// lookup returns the verbs row of name.
func lookup(name string) (verb, bool) {
	for _, v := range verbs {
		if v.name == name {
			return v, true
		}
	}
	return verb{}, false
}

// connect are the subresources whose create is a streaming connection
// (kubectl exec, attach, port-forward): over SPDY it is a POST, over
// WebSocket a GET, which the API server authorizes as create too. So
// create on them allows both methods.
var connect = map[string]bool{"exec": true, "attach": true, "portforward": true}

// Input limits of the parsers.
const (
	maxList      = 1024 // bytes of a --verbs or --resources value
	maxResources = 32
)

// ErrInvalid is wrapped by every error of ParseVerbs, ParseResources and
// Scopes.
var ErrInvalid = errors.New("invalid kubernetes rule")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// ParseVerbs parses a comma-separated list of verbs (get, list, watch,
// create, update, patch, delete, deletecollection), each at most once,
// and returns them in the order of that list.
func ParseVerbs(s string) ([]string, error) {
	if s == "" || len(s) > maxList {
		return nil, invalid("want a comma-separated list of verbs")
	}
	seen := map[string]bool{}
	for _, v := range strings.Split(s, ",") {
		if _, ok := lookup(v); !ok {
			return nil, invalid("unknown verb %q: want get, list, watch, create, update, patch, delete or deletecollection", trunc(v))
		}
		if seen[v] {
			return nil, invalid("verb %q given twice", v)
		}
		seen[v] = true
	}
	return SortVerbs(slices.Collect(maps.Keys(seen))), nil
}

// SortVerbs returns the known verbs of vs once each, in the order of
// ParseVerbs.
func SortVerbs(vs []string) []string {
	var out []string
	for _, v := range verbs {
		if slices.Contains(vs, v.name) {
			out = append(out, v.name)
		}
	}
	return out
}

// ParseResources parses a comma-separated list of at most 32 resources,
// each NAME[.GROUP][/SUBRESOURCE] where NAME and SUBRESOURCE are DNS
// labels and GROUP a DNS subdomain, each at most once.
func ParseResources(s string) ([]Resource, error) {
	if s == "" || len(s) > maxList {
		return nil, invalid("want a comma-separated list of resources")
	}
	items := strings.Split(s, ",")
	if len(items) > maxResources {
		return nil, invalid("more than %d resources", maxResources)
	}
	var out []Resource
	for _, it := range items {
		r, err := parseResource(it)
		if err != nil {
			return nil, err
		}
		if slices.Contains(out, r) {
			return nil, invalid("resource %q given twice", it)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseResource(s string) (Resource, error) {
	var r Resource
	rest, sub, hasSub := strings.Cut(s, "/")
	r.Name, r.Group, _ = strings.Cut(rest, ".")
	r.Subresource = sub
	switch {
	case !validLabel(r.Name):
		return r, invalid("resource %q: want NAME[.GROUP][/SUBRESOURCE] with a lowercase NAME such as pods", trunc(s))
	case strings.Contains(rest, ".") && !validGroup(r.Group):
		return r, invalid("resource %q: invalid API group", trunc(s))
	case hasSub && !validLabel(sub):
		return r, invalid("resource %q: invalid subresource", trunc(s))
	}
	return r, nil
}

// ValidNamespace reports whether ns is a namespace name (a DNS label).
func ValidNamespace(ns string) bool { return validLabel(ns) }

// Scopes expands rule into canonical scopes of service, one per path,
// sorted. A core resource is under /api/v1/namespaces/NS/; a resource of
// group G under /apis/G/*/namespaces/NS/ (any version). For each verb:
// get, update, patch and delete act on RESOURCE/* (one object), list,
// watch, create and deletecollection on RESOURCE (the collection). A
// subresource S takes get, create, update and patch, on RESOURCE/*/S
// (create of exec, attach and portforward allows GET too: see connect);
// other verbs are skipped for it, as in an RBAC rule, but each resource
// must take at least one of the verbs.
// Without resources, RESOURCE is "*" under both /api/v1 and /apis/*/*:
// every resource of every group, no subresource.
func Scopes(service string, rule Rule) ([]string, error) {
	if !scope.ValidServiceName(service) {
		return nil, invalid("invalid service name %q", trunc(service))
	}
	if !ValidNamespace(rule.Namespace) {
		return nil, invalid("invalid namespace %q: want a DNS label", trunc(rule.Namespace))
	}
	if len(rule.Verbs) == 0 {
		return nil, invalid("no verbs")
	}
	res := rule.Resources
	if len(res) == 0 {
		res = []Resource{{Name: "*"}, {Name: "*", Group: "*"}}
	}
	methods := map[string][]string{} // path -> methods
	var paths []string
	for _, r := range res {
		applied := false
		for _, v := range rule.Verbs {
			p, ms, err := expand(rule.Namespace, r, v)
			if errors.Is(err, errNotApplicable) {
				continue // as in an RBAC rule: pods,pods/log with list lists pods only
			}
			if err != nil {
				return nil, err
			}
			applied = true
			if _, ok := methods[p]; !ok {
				paths = append(paths, p)
			}
			methods[p] = append(methods[p], ms...)
		}
		if !applied {
			return nil, invalid("none of the verbs %s applies to subresource %s (get, create, update and patch do)", strings.Join(rule.Verbs, ","), r)
		}
	}
	var out []string
	for _, p := range paths {
		ms := slices.Compact(slices.Sorted(slices.Values(methods[p])))
		sc, err := scope.Parse(service + ":" + strings.Join(ms, ",") + ":" + p)
		if err != nil {
			return nil, invalid("%v", err)
		}
		out = append(out, sc.String())
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// expand returns the path and methods of one verb on one resource.
func expand(ns string, r Resource, name string) (string, []string, error) {
	v, ok := lookup(name)
	if !ok {
		return "", nil, invalid("unknown verb %q", trunc(name))
	}
	base := "/api/v1/namespaces/" + ns + "/" + r.Name
	if r.Group != "" {
		base = "/apis/" + r.Group + "/*/namespaces/" + ns + "/" + r.Name
	}
	if r.Subresource == "" {
		if v.shape == object {
			return base + "/*", []string{v.method}, nil
		}
		return base, []string{v.method}, nil
	}
	p := base + "/*/" + r.Subresource
	switch {
	case name == "create" && connect[r.Subresource]:
		return p, []string{"GET", "POST"}, nil
	case name == "get" || name == "create" || name == "update" || name == "patch":
		return p, []string{v.method}, nil
	}
	return "", nil, errNotApplicable
}

// errNotApplicable is expand's error for a verb a subresource does not
// take (list, watch, delete, deletecollection): Scopes skips it.
var errNotApplicable = errors.New("verb does not apply to a subresource")

// Access is one scope read back in Kubernetes terms.
type Access struct {
	Namespace string   `json:"namespace"`
	Resource  string   `json:"resource"` // Resource.String(); "*" any core resource, "*.*" any resource of any named group
	Verbs     []string `json:"verbs"`
}

// Describe reads a scope of a kubernetes service back in Kubernetes terms,
// if it has one of the shapes Scopes produces (a scope written by hand in
// the same shape reads the same). It reports false for any other scope,
// which is then shown as a path.
func Describe(sc scope.Scope) (Access, bool) {
	segs := strings.Split(sc.Path(), "/")[1:]
	var r Resource
	var ns string
	switch {
	case len(segs) >= 5 && segs[0] == "api" && segs[1] == "v1" && segs[2] == "namespaces":
		ns, segs = segs[3], segs[4:]
	case len(segs) >= 6 && segs[0] == "apis" && segs[2] == "*" && segs[3] == "namespaces":
		r.Group, ns, segs = segs[1], segs[4], segs[5:]
	default:
		return Access{}, false
	}
	if !ValidNamespace(ns) || r.Group != "*" && r.Group != "" && !validGroup(r.Group) {
		return Access{}, false
	}
	r.Name = segs[0]
	if r.Name != "*" && !validLabel(r.Name) {
		return Access{}, false
	}
	shape := collection
	switch {
	case len(segs) == 1:
	case len(segs) == 2 && segs[1] == "*":
		shape = object
	case len(segs) == 3 && segs[1] == "*" && validLabel(segs[2]) && r.Name != "*":
		r.Subresource = segs[2]
	default:
		return Access{}, false
	}
	vs, ok := verbsOf(sc.Methods(), shape, r.Subresource)
	if !ok {
		return Access{}, false
	}
	return Access{Namespace: ns, Resource: r.String(), Verbs: vs}, true
}

// verbsOf returns the verbs that methods allow on a path of shape (and
// subresource sub): false if some method is no verb's there.
func verbsOf(m scope.Methods, shape int, sub string) ([]string, bool) {
	var out []string
	left := m
	take := func(method string, names ...string) {
		if b, _ := scope.MethodBit(method); m.Has(method) {
			out = append(out, names...)
			left &^= b
		}
	}
	switch {
	case sub != "" && connect[sub] && m.Has("GET") && m.Has("POST"):
		take("POST", "create")
		take("GET")
	case sub != "" && connect[sub] && m.Has("POST"):
		return nil, false // POST alone is less than create, which allows GET too
	case sub != "":
		take("GET", "get")
		take("POST", "create")
		take("PUT", "update")
		take("PATCH", "patch")
	case shape == object:
		take("GET", "get")
		take("PUT", "update")
		take("PATCH", "patch")
		take("DELETE", "delete")
	default:
		take("GET", "list", "watch")
		take("POST", "create")
		take("DELETE", "deletecollection")
	}
	return out, left == 0 && len(out) > 0
}

// trunc cuts user input quoted in an error to 64 bytes.
func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
