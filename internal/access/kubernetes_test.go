package access_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"latchkey/internal/access"
	"latchkey/internal/certtest"
	"latchkey/internal/store"
)

// TestAddKubernetesService checks that a kubernetes service is stored
// with its kind and its credential sealed (opened back intact, never in
// the stored bytes), and names its credential without the secret.
func TestAddKubernetesService(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ca, _ := certtest.PEM(t, "api")
	cert, key := certtest.PEM(t, "api")
	for _, tc := range []struct {
		name string
		cred access.KubernetesCredential
		auth string
	}{
		{"prod", access.KubernetesCredential{CA: ca, Token: "sa-token-SECRET-1"}, "token"},
		{"staging", access.KubernetesCredential{CA: ca, ClientCert: cert, ClientKey: key}, "client-certificate"},
	} {
		svc, err := e.a.AddKubernetesService(ctx, root, tc.name, "https://10.0.0.1:6443", tc.cred)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := e.a.Service(ctx, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Kind != "kubernetes" || access.KindOf(stored) != access.KindKubernetes || svc.Kind != stored.Kind {
			t.Errorf("%s: kind %q", tc.name, stored.Kind)
		}
		if strings.Contains(string(stored.SealedCredential), "SECRET") || strings.Contains(string(stored.SealedCredential), "PRIVATE KEY") {
			t.Errorf("%s: credential stored in plain text", tc.name)
		}
		got, err := e.a.KubernetesCredential(stored)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.cred, got); d != "" {
			t.Errorf("%s: credential (-want +got):\n%s", tc.name, d)
		}
		names, err := e.a.CredentialNames(stored)
		if err != nil || len(names) != 1 || names[0] != tc.auth {
			t.Errorf("%s: CredentialNames = %q, %v; want [%s]", tc.name, names, err, tc.auth)
		}
		// The HTTP credential opener refuses it: the gateway cannot take
		// it for headers by mistake.
		if _, err := e.a.Credential(stored); err == nil {
			t.Errorf("%s: Credential opened a kubernetes credential", tc.name)
		}
	}
	if _, err := e.a.KubernetesCredential(mustService(t, e, "prod", "https://wiki.internal")); err == nil {
		t.Error("KubernetesCredential opened an HTTP service's credential")
	}
}

func mustService(t *testing.T, e *env, name, upstream string) store.Service {
	t.Helper()
	s, err := e.a.AddService(context.Background(), root, name+"-http", upstream, []access.Header{{Name: "X-Key", Value: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAddKubernetesServiceRefused lists every refusal: each is
// ReasonInvalid (or conflict), and no message echoes a secret.
func TestAddKubernetesServiceRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ca, _ := certtest.PEM(t, "api")
	cert, key := certtest.PEM(t, "api")
	_, otherKey := certtest.PEM(t, "api")
	ok := access.KubernetesCredential{CA: ca, Token: "sa-SECRET"}
	if _, err := e.a.AddKubernetesService(ctx, root, "taken", "https://h:6443", ok); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, svc, upstream string
		cred                access.KubernetesCredential
		reason              string
	}{
		{"bad name", "Prod", "https://h:6443", ok, access.ReasonInvalid},
		{"admin name", "admin", "https://h:6443", ok, access.ReasonInvalid},
		{"http upstream", "p", "http://h:6443", ok, access.ReasonInvalid},
		{"postgres upstream", "p", "postgres://h", ok, access.ReasonInvalid},
		{"userinfo", "p", "https://u:SECRET@h:6443", ok, access.ReasonInvalid},
		{"query", "p", "https://h:6443?token=SECRET", ok, access.ReasonInvalid},
		{"fragment", "p", "https://h:6443#x", ok, access.ReasonInvalid},
		{"no host", "p", "https:///x", ok, access.ReasonInvalid},
		{"not a URL", "p", "https://h:6443/%zz", ok, access.ReasonInvalid},
		{"long URL", "p", "https://h/" + strings.Repeat("a", 2100), ok, access.ReasonInvalid},
		{"no CA", "p", "https://h:6443", access.KubernetesCredential{Token: "sa-SECRET"}, access.ReasonInvalid},
		{"CA not PEM", "p", "https://h:6443", access.KubernetesCredential{CA: "SECRET", Token: "sa-SECRET"}, access.ReasonInvalid},
		{"CA too large", "p", "https://h:6443", access.KubernetesCredential{CA: ca + strings.Repeat("#", 70<<10), Token: "sa-SECRET"}, access.ReasonInvalid},
		{"no credential", "p", "https://h:6443", access.KubernetesCredential{CA: ca}, access.ReasonInvalid},
		{"token and certificate", "p", "https://h:6443", access.KubernetesCredential{CA: ca, Token: "sa-SECRET", ClientCert: cert, ClientKey: key}, access.ReasonInvalid},
		{"token with a space", "p", "https://h:6443", access.KubernetesCredential{CA: ca, Token: "sa SECRET"}, access.ReasonInvalid},
		{"token with a newline", "p", "https://h:6443", access.KubernetesCredential{CA: ca, Token: "sa-SECRET\nX-Evil: 1"}, access.ReasonInvalid},
		{"token too long", "p", "https://h:6443", access.KubernetesCredential{CA: ca, Token: strings.Repeat("S", 8193)}, access.ReasonInvalid},
		{"certificate without key", "p", "https://h:6443", access.KubernetesCredential{CA: ca, ClientCert: cert}, access.ReasonInvalid},
		{"key without certificate", "p", "https://h:6443", access.KubernetesCredential{CA: ca, ClientKey: key}, access.ReasonInvalid},
		{"key of another certificate", "p", "https://h:6443", access.KubernetesCredential{CA: ca, ClientCert: cert, ClientKey: otherKey}, access.ReasonInvalid},
		{"name taken", "taken", "https://h:6443", ok, access.ReasonConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.a.AddKubernetesService(ctx, root, tt.svc, tt.upstream, tt.cred)
			if got := access.ReasonOf(err); got != tt.reason {
				t.Fatalf("reason %q (%v), want %s", got, err, tt.reason)
			}
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "PRIVATE") {
				t.Errorf("error echoes a secret: %v", err)
			}
			if _, err := e.a.Service(ctx, tt.svc); err == nil && tt.svc != "taken" {
				t.Error("refused service was stored")
			}
		})
	}
}
