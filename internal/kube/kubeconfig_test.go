package kube

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKubeconfig(t *testing.T) {
	k := Kubeconfig{Name: "latchkey-prod", Server: "https://gw.example:8443/prod", CA: []byte("CA"),
		Namespace: "dev", Token: "lk_x", ClientCert: []byte("C"), ClientKey: []byte("K")}
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "latchkey-prod",
		"clusters": []any{map[string]any{"name": "latchkey-prod", "cluster": map[string]any{
			"server": "https://gw.example:8443/prod", "certificate-authority-data": "Q0E="}}},
		"users": []any{map[string]any{"name": "latchkey-prod", "user": map[string]any{
			"token": "lk_x", "client-certificate-data": "Qw==", "client-key-data": "Sw=="}}},
		"contexts": []any{map[string]any{"name": "latchkey-prod", "context": map[string]any{
			"cluster": "latchkey-prod", "user": "latchkey-prod", "namespace": "dev"}}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("kubeconfig (-want +got):\n%s", d)
	}
	bad := []Kubeconfig{
		{Name: "n", Server: "gw.example/prod", Token: "t"},
		{Name: "n", Server: "ftp://gw/prod", Token: "t"},
		{Name: "n", Server: "https://gw/prod"},
		{Name: "n", Server: "https://gw/prod", Token: "t", ClientCert: []byte("C")},
		{Name: "n", Server: "https://gw/prod", Token: "t", ClientKey: []byte("K")},
		{Server: "https://gw/prod", Token: "t"},
	}
	for _, k := range bad {
		if _, err := k.Marshal(); err == nil {
			t.Errorf("Marshal(%+v) succeeded", k)
		}
	}
}
