package kube

import "strings"

// Discovery reports whether a request is one of the API discovery reads
// kubectl makes before any other request, which every token with a scope
// on a kubernetes service may make whatever its scopes: GET of exactly
//
//	/api                       core API versions
//	/api/VERSION               core resources (APIResourceList)
//	/apis                      API groups (APIGroupList)
//	/apis/GROUP/VERSION        a group's resources
//	/version                   the server's version
//	/openapi/v2                OpenAPI v2 document
//	/openapi/v3                OpenAPI v3 index
//	/openapi/v3/api/VERSION    OpenAPI v3 of the core group
//	/openapi/v3/apis/GROUP/VERSION
//
// where VERSION is v1, v2beta1, v1alpha3 and the like and GROUP a DNS
// name (apps, networking.k8s.io). Nothing else: no resource, no namespace
// list, no /apis/GROUP, no other method. path is the escaped path the
// gateway checked (CheckPath), relative to the service.
func Discovery(method, path string) bool {
	if method != "GET" || !strings.HasPrefix(path, "/") {
		return false
	}
	switch path {
	case "/api", "/apis", "/version", "/openapi/v2", "/openapi/v3":
		return true
	}
	if rest, ok := strings.CutPrefix(path, "/openapi/v3/"); ok {
		path = "/" + rest
	} else if strings.HasPrefix(path, "/openapi/") {
		return false
	}
	segs := strings.Split(path, "/")[1:]
	switch {
	case len(segs) == 2 && segs[0] == "api":
		return validVersion(segs[1])
	case len(segs) == 3 && segs[0] == "apis":
		return validGroup(segs[1]) && validVersion(segs[2])
	}
	return false
}

// validVersion reports whether v is a Kubernetes API version:
// v[1-9][0-9]*, optionally followed by alpha or beta and [1-9][0-9]*.
func validVersion(v string) bool {
	rest, ok := strings.CutPrefix(v, "v")
	if !ok {
		return false
	}
	n := number(rest)
	if n == 0 {
		return false
	}
	rest = rest[n:]
	if rest == "" {
		return true
	}
	for _, pre := range []string{"alpha", "beta"} {
		if r, ok := strings.CutPrefix(rest, pre); ok {
			return number(r) == len(r) && r != ""
		}
	}
	return false
}

// number returns the length of the decimal number without a leading zero
// at the start of s (0 if none).
func number(s string) int {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0
	}
	i := 1
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// validGroup reports whether g is an API group name: a DNS subdomain
// (RFC 1123 labels joined by dots), at most 253 bytes.
func validGroup(g string) bool {
	if g == "" || len(g) > 253 {
		return false
	}
	for _, l := range strings.Split(g, ".") {
		if !validLabel(l) {
			return false
		}
	}
	return true
}

// validLabel reports whether l is an RFC 1123 DNS label: 1 to 63 lowercase
// letters, digits and '-', starting and ending with a letter or digit.
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := range len(l) {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// APIPath reports whether path (relative to the service) is under one of
// the roots of a Kubernetes API server's paths: /api, /apis, /version,
// /openapi, /healthz, /livez, /readyz. The gateway answers a denial made
// before it knows the request's service (an unauthenticated one) as a
// Kubernetes Status when the path alone looks like a Kubernetes request.
func APIPath(path string) bool {
	for _, root := range []string{"/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz"} {
		if rest, ok := strings.CutPrefix(path, root); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	return false
}
