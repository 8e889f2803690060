package kube

import "testing"

func TestDiscovery(t *testing.T) {
	allowed := []string{"/api", "/apis", "/version", "/api/v1", "/apis/apps/v1", "/apis/networking.k8s.io/v1",
		"/apis/batch/v1beta1", "/apis/x.io/v2alpha3", "/openapi/v2", "/openapi/v3", "/openapi/v3/api/v1",
		"/openapi/v3/apis/apps/v1"}
	for _, p := range allowed {
		if !Discovery("GET", p) {
			t.Errorf("Discovery(GET %s) = false, want true", p)
		}
		for _, m := range []string{"HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			if Discovery(m, p) {
				t.Errorf("Discovery(%s %s) = true, want false", m, p)
			}
		}
	}
	refused := []string{"/", "", "/api/", "/apis/", "/api/v1/", "/api/v1/namespaces", "/api/v1/pods",
		"/api/v1/namespaces/dev/pods", "/apis/apps", "/apis/apps/v1/deployments", "/apis/apps/v1/namespaces/dev/deployments",
		"/api/v0", "/api/v01", "/api/V1", "/api/v1beta", "/api/v1gamma1", "/api/1", "/apis/Apps/v1", "/apis/-a/v1",
		"/apis/a..b/v1", "/version/x", "/versions", "/openapi", "/openapi/", "/openapi/v1", "/openapi/v3/", "/openapi/v3/api",
		"/openapi/v3/api/v1/namespaces", "/openapi/v2/x", "/openapi/v3/openapi/v3/api/v1", "/healthz", "/metrics", "/logs/x",
		"/apis/apps/v1/../v1", "%/api/v1", "x/apis/apps/v1", "api/v1"}
	for _, p := range refused {
		if Discovery("GET", p) {
			t.Errorf("Discovery(GET %s) = true, want false", p)
		}
	}
}

func TestAPIPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/api": true, "/api/v1/namespaces/dev/pods": true, "/apis": true, "/apis/apps/v1": true,
		"/version": true, "/openapi/v2": true, "/healthz": true, "/livez": true, "/readyz/ping": true,
		"": false, "/": false, "/apix": false, "/apisx/y": false, "/v1/invoices": false, "/x/api": false, "/versions": false,
	} {
		if got := APIPath(path); got != want {
			t.Errorf("APIPath(%q) = %v, want %v", path, got, want)
		}
	}
}
