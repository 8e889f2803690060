package access

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"latchkey/internal/audit"
	"latchkey/internal/kube"
	"latchkey/internal/scope"
	"latchkey/internal/store"
)

// KindKubernetes is the kind of a Kubernetes API server (store.Service.Kind
// "kubernetes"), served by the HTTP gateway with impersonation (package
// kube).
const KindKubernetes = kube.Kind

// KindOf returns the kind of a stored service: its stored Kind if set,
// else the kind its upstream's scheme gives (ServiceKind).
func KindOf(s store.Service) string {
	if s.Kind != "" {
		return s.Kind
	}
	return ServiceKind(s.Upstream)
}

// KubernetesCredential is what the gateway needs to call a Kubernetes API
// server as itself: the PEM CA bundle that verifies the API server, and
// either a bearer Token (a service account's, say) or a PEM ClientCert and
// ClientKey. The identity needs only the right to impersonate users and
// the group kube.Group. Sealed like every service credential, as the JSON
// object {"kind":"kubernetes","ca":...,"token":...,"client_cert":...,
// "client_key":...}; never returned by any API.
type KubernetesCredential struct {
	CA         string `json:"ca"`
	Token      string `json:"token,omitempty"`
	ClientCert string `json:"client_cert,omitempty"`
	ClientKey  string `json:"client_key,omitempty"`
}

type sealedKubernetes struct {
	Kind string `json:"kind"`
	KubernetesCredential
}

// Limits on a Kubernetes credential.
const (
	maxPEM   = 64 << 10
	maxToken = 8192
)

// AddKubernetesService registers a Kubernetes API server: upstream is its
// https URL (no userinfo, query or fragment) and cred the CA bundle and
// the gateway's credential. Audited as service.add.
func (a *Authority) AddKubernetesService(ctx context.Context, by Actor, name, upstream string, cred KubernetesCredential) (svc store.Service, err error) {
	rec := a.event(by, "service.add")
	rec.Service = name
	err = a.act(ctx, rec, func(r *audit.Record) error {
		svc, err = a.newKubernetesService(ctx, by, name, upstream, cred)
		r.Reason = "kubernetes; " + kubernetesAuth(cred)
		return err
	}, func() error {
		return storeErr(a.cfg.Store.CreateService(ctx, svc), fmt.Sprintf("service %q", name))
	})
	return svc, err
}

// kubernetesAuth names how the gateway authenticates (never the secret).
func kubernetesAuth(c KubernetesCredential) string {
	if c.Token != "" {
		return "token"
	}
	return "client-certificate"
}

func (a *Authority) newKubernetesService(ctx context.Context, by Actor, name, upstream string, cred KubernetesCredential) (store.Service, error) {
	if !scope.ValidServiceName(name) {
		return store.Service{}, refuse(ReasonInvalid, "invalid service name %q: want lowercase letters, digits and '-', starting with a letter (and not \"admin\")", name)
	}
	if err := validKubernetesUpstream(upstream); err != nil {
		return store.Service{}, err
	}
	if err := ValidKubernetesCredential(cred); err != nil {
		return store.Service{}, err
	}
	if _, err := a.cfg.Store.Service(ctx, name); err == nil {
		return store.Service{}, refuse(ReasonConflict, "service %q already exists", name)
	}
	plain, err := json.Marshal(sealedKubernetes{Kind: KindKubernetes, KubernetesCredential: cred})
	if err != nil {
		return store.Service{}, err
	}
	sealed, err := a.cfg.Box.Seal(plain, []byte(name))
	if err != nil {
		return store.Service{}, err
	}
	return store.Service{Name: name, Upstream: upstream, Kind: KindKubernetes, SealedCredential: sealed,
		CreatedAt: a.now(), CreatedBy: by.TokenID}, nil
}

// validKubernetesUpstream checks an API server URL: https, a host, no
// userinfo, query or fragment. Messages never echo the URL.
func validKubernetesUpstream(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > 2048:
		return refuse(ReasonInvalid, "invalid upstream URL: want the API server's https URL")
	case u.Scheme != "https":
		return refuse(ReasonInvalid, "invalid upstream URL: a kubernetes service's API server URL must be https")
	case u.User != nil:
		return refuse(ReasonInvalid, "invalid upstream URL: credentials in the URL are not allowed")
	case u.Host == "" || u.Opaque != "":
		return refuse(ReasonInvalid, "invalid upstream URL: no host")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return refuse(ReasonInvalid, "invalid upstream URL: no query or fragment allowed")
	}
	return nil
}

// ValidKubernetesCredential checks a credential: a CA bundle holding at
// least one certificate, and exactly one of a token (printable ASCII, no
// spaces) or a client certificate with its matching key. Messages never
// echo a secret.
func ValidKubernetesCredential(c KubernetesCredential) error {
	if len(c.CA) > maxPEM || !x509.NewCertPool().AppendCertsFromPEM([]byte(c.CA)) {
		return refuse(ReasonInvalid, "invalid CA bundle: want PEM certificates (at most %d bytes)", maxPEM)
	}
	cert := c.ClientCert != "" || c.ClientKey != ""
	switch {
	case c.Token != "" && cert:
		return refuse(ReasonInvalid, "give the gateway's token or its client certificate, not both")
	case c.Token == "" && !cert:
		return refuse(ReasonInvalid, "the gateway needs a credential for the API server: a token, or a client certificate and key")
	case c.Token != "":
		if len(c.Token) > maxToken || strings.ContainsFunc(c.Token, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			return refuse(ReasonInvalid, "invalid token: want at most %d printable ASCII characters without spaces", maxToken)
		}
	default:
		if len(c.ClientCert) > maxPEM || len(c.ClientKey) > maxPEM {
			return refuse(ReasonInvalid, "client certificate or key larger than %d bytes", maxPEM)
		}
		if _, err := tls.X509KeyPair([]byte(c.ClientCert), []byte(c.ClientKey)); err != nil {
			return refuse(ReasonInvalid, "invalid client certificate and key: want a PEM certificate and its PEM private key")
		}
	}
	return nil
}

// KubernetesCredential opens the sealed credential of a kubernetes
// service. Only the gateway may call it; nothing it returns is ever shown
// to a client or logged.
func (a *Authority) KubernetesCredential(s store.Service) (KubernetesCredential, error) {
	if KindOf(s) != KindKubernetes {
		return KubernetesCredential{}, fmt.Errorf("service %q is not a kubernetes service", s.Name)
	}
	plain, err := a.cfg.Box.Open(s.SealedCredential, []byte(s.Name))
	if err != nil {
		return KubernetesCredential{}, fmt.Errorf("failed to open credential of service %q: %w", s.Name, err)
	}
	var sk sealedKubernetes
	if err := json.Unmarshal(plain, &sk); err != nil || sk.Kind != KindKubernetes {
		return KubernetesCredential{}, fmt.Errorf("failed to decode credential of service %q", s.Name)
	}
	return sk.KubernetesCredential, nil
}
