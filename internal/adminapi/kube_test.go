package adminapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/certtest"
	"latchkey/internal/kube"
)

// TestKubernetesService: POST /v1/services with "kubernetes" registers a
// kubernetes service whose listing shows its kind and how the gateway
// authenticates, never the token; other credential fields with it are
// refused; the access report reads its scopes in Kubernetes terms (and
// only for a kubernetes service).
func TestKubernetesService(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ctx := context.Background()
	c := e.client(e.root)
	ca, _ := certtest.PEM(t, "ca")
	cred := &access.KubernetesCredential{CA: ca, Token: "sa-kube-SECRET"}
	for _, bad := range []adminapi.NewService{
		{Name: "prod", Upstream: "https://h:6443", Kubernetes: cred, CredentialHeaders: []access.Header{{Name: "X", Value: "y"}}},
		{Name: "prod", Upstream: "https://h:6443", Kubernetes: cred, PrivateHeaders: []string{"Cookie"}},
		{Name: "prod", Upstream: "https://h:6443", Kubernetes: cred, DatabaseLogins: &access.DatabaseLogins{}},
		{Name: "prod", Upstream: "https://h:6443", Kubernetes: &access.KubernetesCredential{CA: ca}},
	} {
		if _, err := c.AddService(ctx, bad); reasonOf(err) != access.ReasonInvalid {
			t.Errorf("AddService(%+v): %v, want invalid", bad, err)
		}
	}
	svc, err := c.AddService(ctx, adminapi.NewService{Name: "prod", Upstream: "https://h:6443", Kubernetes: cred})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Kind != "kubernetes" || !cmp.Equal(svc.CredentialHeaders, []string{"token"}) {
		t.Errorf("service %+v", svc)
	}
	for _, p := range []string{"/v1/services", "/v1/services/prod"} {
		status, body := call(t, e, "GET", p, e.root, "")
		if status != 200 || strings.Contains(body, "SECRET") || strings.Contains(body, "BEGIN CERTIFICATE") || !strings.Contains(body, `"kind":"kubernetes"`) {
			t.Errorf("GET %s: %d %s", p, status, body)
		}
	}
	scopes, err := kube.Scopes("prod", kube.Rule{Namespace: "dev", Verbs: []string{"get", "list"}, Resources: []kube.Resource{{Name: "pods"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The same shape on the HTTP service billing is not read as Kubernetes.
	scopes = append(scopes, "billing:GET:/api/v1/namespaces/dev/pods", "prod:GET:/api/v1/nodes")
	if _, err := c.AddGrant(ctx, adminapi.NewGrant{Contractor: "alice", Scopes: scopes, Until: "5d"}); err != nil {
		t.Fatal(err)
	}
	rows, err := c.AccessReport(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*kube.Access{}
	for _, r := range rows {
		if r.Source == "grant" {
			got[r.Scope] = r.Kubernetes
		}
	}
	want := map[string]*kube.Access{
		"billing:read:/v1/**":                     nil,
		"billing:GET:/api/v1/namespaces/dev/pods": nil,
		"prod:GET:/api/v1/nodes":                  nil,
		"prod:GET:/api/v1/namespaces/dev/pods":    {Namespace: "dev", Resource: "pods", Verbs: []string{"list", "watch"}},
		"prod:GET:/api/v1/namespaces/dev/pods/*":  {Namespace: "dev", Resource: "pods", Verbs: []string{"get"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("access report (-want +got):\n%s", d)
	}
	_, body := call(t, e, "GET", "/v1/reports/access?contractor=alice", e.root, "")
	var raw []map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, r := range raw {
		if _, ok := r["kubernetes"]; ok != (got[r["scope"].(string)] != nil) {
			t.Errorf("row %v: kubernetes field present %v", r, ok)
		}
	}
}
