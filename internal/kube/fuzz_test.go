package kube

import (
	"slices"
	"strings"
	"testing"

	"latchkey/internal/scope"
)

// FuzzRule checks the --verbs and --resources parsers: what they accept
// prints back to itself (canonical order aside), expands into canonical
// scopes that parse, and every such scope reads back (Describe) as the
// namespace and only verbs that were granted.
func FuzzRule(f *testing.F) {
	f.Add("get,list,watch", "pods,deployments.apps,pods/log", "dev")
	f.Add("create", "pods/exec", "team-a")
	f.Add("delete,deletecollection", "configmaps", "x")
	f.Add("get", "", "dev")
	f.Fuzz(func(t *testing.T, vs, rs, ns string) {
		verbs, err := ParseVerbs(vs)
		if err != nil {
			return
		}
		if got, _ := ParseVerbs(strings.Join(verbs, ",")); !slices.Equal(got, verbs) {
			t.Fatalf("verbs %q do not round-trip: %q", verbs, got)
		}
		var res []Resource
		if rs != "" {
			if res, err = ParseResources(rs); err != nil {
				return
			}
			var texts []string
			for _, r := range res {
				texts = append(texts, r.String())
			}
			if strings.Join(texts, ",") != rs {
				t.Fatalf("resources %q print as %q", rs, texts)
			}
		}
		scopes, err := Scopes("prod", Rule{Namespace: ns, Verbs: verbs, Resources: res})
		if err != nil {
			return
		}
		for _, s := range scopes {
			sc, err := scope.Parse(s)
			if err != nil || sc.String() != s {
				t.Fatalf("scope %q: %v", s, err)
			}
			if a, ok := Describe(sc); ok {
				if a.Namespace != ns {
					t.Fatalf("scope %q reads back namespace %q", s, a.Namespace)
				}
				for _, v := range a.Verbs {
					if !slices.Contains(verbs, v) && !(v == "watch" && slices.Contains(verbs, "list")) && !(v == "list" && slices.Contains(verbs, "watch")) {
						t.Fatalf("scope %q reads back verb %q, not granted (%q)", s, v, verbs)
					}
				}
			}
		}
	})
}

// FuzzDiscovery checks that Discovery never allows a path that reaches a
// namespace or a resource, nor a method but GET.
func FuzzDiscovery(f *testing.F) {
	f.Add("GET", "/apis/apps/v1")
	f.Add("GET", "/api/v1/namespaces")
	f.Add("POST", "/api")
	f.Fuzz(func(t *testing.T, method, path string) {
		if !Discovery(method, path) {
			return
		}
		segs := strings.Split(path, "/")
		if method != "GET" || len(segs) > 6 || strings.Contains(path, "namespaces") || strings.Contains(path, "..") || strings.Contains(path, "%") {
			t.Fatalf("Discovery(%q, %q) = true", method, path)
		}
	})
}

// FuzzDescribe checks that reading a scope back never panics, and that
// what it reads expands (Scopes) into exactly that scope: the report
// shows no more and no less than the scope allows.
func FuzzDescribe(f *testing.F) {
	f.Add("prod:GET:/api/v1/namespaces/dev/pods")
	f.Add("prod:GET,POST:/api/v1/namespaces/dev/pods/*/exec")
	f.Add("prod:PUT,PATCH:/apis/apps/*/namespaces/x/deployments/*/scale")
	f.Add("prod:*:/apis/*/*/namespaces/dev/*/*")
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := scope.Parse(s)
		if err != nil || sc.IsAdmin() {
			return
		}
		a, ok := Describe(sc)
		if !ok {
			return
		}
		if a.Namespace == "" || len(a.Verbs) == 0 || a.Resource == "" {
			t.Fatalf("Describe(%q) = %+v", s, a)
		}
		if strings.Contains(a.Resource, "*") || !scope.ValidServiceName(sc.Service()) {
			return // wildcards: Scopes writes them only for "every resource"
		}
		res, err := ParseResources(a.Resource)
		if err != nil {
			t.Fatalf("Describe(%q) resource %q does not parse: %v", s, a.Resource, err)
		}
		got, err := Scopes(sc.Service(), Rule{Namespace: a.Namespace, Verbs: a.Verbs, Resources: res})
		if err != nil || len(got) != 1 || got[0] != sc.String() {
			t.Fatalf("Describe(%q) = %+v expands to %q, %v", s, a, got, err)
		}
	})
}
