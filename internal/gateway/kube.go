package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"

	"latchkey/internal/access"
	"latchkey/internal/kube"
	"latchkey/internal/scope"
	"latchkey/internal/store"
)

// spdy is the Upgrade token of the streams kubectl exec, attach and
// port-forward open with API servers that do not take WebSocket.
const spdy = "SPDY/3.1"

// kubeTransport returns the credential headers and the transport of a
// kubernetes service: the gateway calls the API server as itself, with
// its bearer token (a credential header, so the response scrub applies)
// or its client certificate, verifying the server with the service's CA
// bundle only. HTTP/2 is off: the upgraded streams of exec, attach and
// port-forward need HTTP/1.1, as does Go's ReverseProxy for them.
func (h *Handler) kubeTransport(svc store.Service) ([]access.Header, http.RoundTripper, error) {
	cred, err := h.cfg.Authority.KubernetesCredential(svc)
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(cred.CA)) {
		return nil, nil, fmt.Errorf("service %q: no certificate in the CA bundle", svc.Name)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	if base, ok := h.cfg.Transport.(*http.Transport); ok {
		t = base.Clone()
	}
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	var creds []access.Header
	if cred.Token != "" {
		creds = []access.Header{{Name: "Authorization", Value: "Bearer " + cred.Token}}
	} else {
		pair, err := tls.X509KeyPair([]byte(cred.ClientCert), []byte(cred.ClientKey))
		if err != nil {
			return nil, nil, fmt.Errorf("service %q: invalid client certificate: %w", svc.Name, err)
		}
		t.TLSClientConfig.Certificates = []tls.Certificate{pair}
	}
	return creds, t, nil
}

// contractorKey is the context key under which serve passes the
// authenticated contractor to rewrite.
type contractorKey struct{}

func withContractor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, contractorKey{}, name)
}

func contractorOf(ctx context.Context) string {
	name, _ := ctx.Value(contractorKey{}).(string)
	return name
}

// identityPrefixes are the prefixes of the request headers that name who
// a request is for, in any case: impersonation (Impersonate-User, -Group,
// -Uid, -Extra-*), and the front-proxy headers (X-Remote-User, -Group,
// -Extra-*, the API server's usual --requestheader-* names), which it
// believes from a client certificate it trusts for them; should the
// gateway's certificate be one, a contractor must not set them.
var identityPrefixes = []string{"Impersonate-", "X-Remote-"}

// impersonate removes every identity header of the client's request (see
// identityPrefixes) and asks the API server to act as the contractor:
// Impersonate-User "latchkey:NAME", Impersonate-Group
// "latchkey:contractors". A request without a contractor (never reached:
// admin tokens cannot call services) would run as the gateway: it is
// given an impossible user instead.
func impersonate(hd http.Header, contractor string) {
	for name := range hd {
		for _, p := range identityPrefixes {
			if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
				delete(hd, name)
			}
		}
	}
	user := kube.User(contractor)
	if contractor == "" {
		user = kube.UserPrefix + "-" // not a contractor name: matches no RBAC binding
	}
	hd["Impersonate-User"] = []string{user}
	hd["Impersonate-Group"] = []string{kube.Group}
}

// writeDenialAs answers a denial as a Kubernetes Status when asKube, else
// as the gateway's JSON denial.
func writeDenialAs(w http.ResponseWriter, asKube bool, status int, reason, msg string) {
	if asKube {
		kube.WriteStatus(w, status, reason, msg)
		return
	}
	writeDenial(w, status, reason, msg)
}

// discovery reports whether a request that no scope of the token matched
// is a kubernetes discovery read (kube.Discovery) on a kubernetes service
// the token has a scope for (naming it, or "*"): kubectl reads those
// before anything else, so every such token may.
func discovery(set scope.Set, service, method, path string) bool {
	if !kube.Discovery(method, path) {
		return false
	}
	for _, sc := range set {
		if !sc.IsAdmin() && (sc.Service() == service || sc.Service() == "*") {
			return true
		}
	}
	return false
}
