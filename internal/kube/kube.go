// Package kube implements what is specific to Kubernetes API servers behind
// the gateway: the expansion of a grant in Kubernetes terms (namespace,
// resources, verbs) into path scopes and back (rule.go), the discovery
// paths every token with a scope on a kubernetes service may read
// (discovery.go), denials as Kubernetes Status objects (status.go), and
// kubeconfig files pointing kubectl at the gateway (kubeconfig.go). It is
// pure: no I/O but writing to the io.Writer and http.ResponseWriter given.
package kube

// Kind is the store.Service.Kind of a Kubernetes API server.
const Kind = "kubernetes"

// Impersonation: the gateway calls the API server as itself, asking it to
// act as the contractor (Kubernetes user impersonation), so the cluster's
// RBAC and audit log see "latchkey:NAME" in group "latchkey:contractors".
const (
	UserPrefix = "latchkey:"
	Group      = "latchkey:contractors"
)

// User returns the Kubernetes user name the gateway impersonates for a
// contractor.
func User(contractor string) string { return UserPrefix + contractor }
