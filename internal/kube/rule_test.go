package kube

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/scope"
)

func TestScopes(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		want []string
	}{
		{"read pods", Rule{Namespace: "dev", Verbs: []string{"get", "list", "watch"}, Resources: []Resource{{Name: "pods"}}},
			[]string{"prod:GET:/api/v1/namespaces/dev/pods", "prod:GET:/api/v1/namespaces/dev/pods/*"}},
		{"every verb", Rule{Namespace: "dev", Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"},
			Resources: []Resource{{Name: "configmaps"}}},
			[]string{"prod:GET,POST,DELETE:/api/v1/namespaces/dev/configmaps", "prod:GET,PUT,PATCH,DELETE:/api/v1/namespaces/dev/configmaps/*"}},
		{"named group", Rule{Namespace: "team-a", Verbs: []string{"get", "patch"}, Resources: []Resource{{Name: "deployments", Group: "apps"}}},
			[]string{"prod:GET,PATCH:/apis/apps/*/namespaces/team-a/deployments/*"}},
		{"logs", Rule{Namespace: "dev", Verbs: []string{"get"}, Resources: []Resource{{Name: "pods", Subresource: "log"}}},
			[]string{"prod:GET:/api/v1/namespaces/dev/pods/*/log"}},
		{"exec is a connect subresource", Rule{Namespace: "dev", Verbs: []string{"create"}, Resources: []Resource{{Name: "pods", Subresource: "exec"}}},
			[]string{"prod:GET,POST:/api/v1/namespaces/dev/pods/*/exec"}},
		{"scale update", Rule{Namespace: "dev", Verbs: []string{"update"}, Resources: []Resource{{Name: "deployments", Group: "apps", Subresource: "scale"}}},
			[]string{"prod:PUT:/apis/apps/*/namespaces/dev/deployments/*/scale"}},
		{"every resource", Rule{Namespace: "dev", Verbs: []string{"get", "list"}},
			[]string{"prod:GET:/api/v1/namespaces/dev/*", "prod:GET:/api/v1/namespaces/dev/*/*",
				"prod:GET:/apis/*/*/namespaces/dev/*", "prod:GET:/apis/*/*/namespaces/dev/*/*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Scopes("prod", tt.rule)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("Scopes (-want +got):\n%s", d)
			}
			// Every scope is canonical and reads back to verbs of the rule.
			for _, s := range got {
				sc, err := scope.Parse(s)
				if err != nil || sc.String() != s {
					t.Errorf("scope %q not canonical: %v", s, err)
				}
				a, ok := Describe(sc)
				if !ok || a.Namespace != tt.rule.Namespace {
					t.Errorf("Describe(%q) = %+v, %v", s, a, ok)
				}
			}
		})
	}
}

func TestScopesRefused(t *testing.T) {
	pods := []Resource{{Name: "pods"}}
	tests := []struct {
		name    string
		service string
		rule    Rule
	}{
		{"bad service", "Prod", Rule{Namespace: "dev", Verbs: []string{"get"}, Resources: pods}},
		{"no namespace", "prod", Rule{Verbs: []string{"get"}, Resources: pods}},
		{"namespace with slash", "prod", Rule{Namespace: "dev/x", Verbs: []string{"get"}, Resources: pods}},
		{"namespace wildcard", "prod", Rule{Namespace: "*", Verbs: []string{"get"}, Resources: pods}},
		{"no verbs", "prod", Rule{Namespace: "dev", Resources: pods}},
		{"unknown verb", "prod", Rule{Namespace: "dev", Verbs: []string{"escalate"}, Resources: pods}},
		{"list of a subresource", "prod", Rule{Namespace: "dev", Verbs: []string{"list"}, Resources: []Resource{{Name: "pods", Subresource: "log"}}}},
		{"delete of a subresource", "prod", Rule{Namespace: "dev", Verbs: []string{"delete"}, Resources: []Resource{{Name: "pods", Subresource: "exec"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Scopes(tt.service, tt.rule)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Scopes = %v, %v; want ErrInvalid", got, err)
			}
		})
	}
}

func TestParseVerbs(t *testing.T) {
	got, err := ParseVerbs("watch,get,list")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"get", "list", "watch"}, got); d != "" {
		t.Errorf("ParseVerbs (-want +got):\n%s", d)
	}
	for _, bad := range []string{"", "get,", ",get", "get,get", "GET", "get list", "escalate", "impersonate", strings.Repeat("get,", 300)} {
		if v, err := ParseVerbs(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseVerbs(%q) = %v, %v; want ErrInvalid", bad, v, err)
		}
	}
}

func TestParseResources(t *testing.T) {
	got, err := ParseResources("pods,deployments.apps,pods/log,ingresses.networking.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	want := []Resource{{Name: "pods"}, {Name: "deployments", Group: "apps"}, {Name: "pods", Subresource: "log"},
		{Name: "ingresses", Group: "networking.k8s.io"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseResources (-want +got):\n%s", d)
	}
	for _, bad := range []string{"", "pods,", "Pods", "*", "pods/*", "pods/", "pods.", ".apps", "pods..apps", "pods/log/x",
		"pods,pods", "pods.apps/-x", "a_b", "pods/%2e", strings.Repeat("p,", 40) + "p"} {
		if r, err := ParseResources(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseResources(%q) = %v, %v; want ErrInvalid", bad, r, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		scope string
		want  Access
		ok    bool
	}{
		{"prod:GET:/api/v1/namespaces/dev/pods", Access{"dev", "pods", []string{"list", "watch"}}, true},
		{"prod:GET,DELETE:/api/v1/namespaces/dev/pods/*", Access{"dev", "pods", []string{"get", "delete"}}, true},
		{"prod:POST:/apis/apps/*/namespaces/x/deployments", Access{"x", "deployments.apps", []string{"create"}}, true},
		{"prod:GET,POST:/api/v1/namespaces/dev/pods/*/exec", Access{"dev", "pods/exec", []string{"create"}}, true},
		{"prod:GET:/api/v1/namespaces/dev/pods/*/exec", Access{"dev", "pods/exec", []string{"get"}}, true},
		{"prod:GET:/apis/*/*/namespaces/dev/*/*", Access{"dev", "*.*", []string{"get"}}, true},
		// Shapes Scopes never writes are shown as paths.
		{"prod:GET:/api/v1/namespaces/dev/pods/**", Access{}, false},
		{"prod:HEAD:/api/v1/namespaces/dev/pods", Access{}, false},
		{"prod:PUT:/api/v1/namespaces/dev/pods", Access{}, false},
		{"prod:POST:/api/v1/namespaces/dev/pods/*", Access{}, false},
		{"prod:GET:/api/v1/namespaces/*/pods", Access{}, false},
		{"prod:GET:/apis/apps/v1/namespaces/dev/deployments", Access{}, false},
		{"prod:GET:/api/v1/nodes", Access{}, false},
		{"prod:GET:/api/v1/namespaces/dev/pods/x", Access{}, false},
		{"prod:POST:/api/v1/namespaces/dev/pods/*/exec", Access{}, false}, // less than create
		{"prod:GET:/api/v1/namespaces/dev/*/*/log", Access{}, false},
	}
	for _, tt := range tests {
		got, ok := Describe(scope.MustParse(tt.scope))
		if ok != tt.ok {
			t.Errorf("Describe(%q) ok = %v, want %v", tt.scope, ok, tt.ok)
			continue
		}
		if d := cmp.Diff(tt.want, got); ok && d != "" {
			t.Errorf("Describe(%q) (-want +got):\n%s", tt.scope, d)
		}
	}
}
