package kube

import (
	"encoding/json"
	"errors"
	"net/url"
)

// Kubeconfig is what a kubeconfig file written for a contractor holds: one
// cluster (the gateway's URL for the service), one user (the contractor's
// token, and the client certificate it is bound to, if any) and one
// context joining them, which is the current one.
type Kubeconfig struct {
	// Name names the cluster, user and context ("latchkey-SERVICE").
	Name string
	// Server is https://GATEWAY/SERVICE.
	Server string
	// CA is the PEM of the CA that signed the gateway's certificate;
	// empty when the system's roots verify it.
	CA []byte
	// Namespace is the context's default namespace; "" for none.
	Namespace string
	// Token is the contractor's latchkey token. Required.
	Token string
	// ClientCert and ClientKey are the PEM certificate and key of an
	// mTLS-bound token (token issue --bind mtls --x5t); both or neither.
	ClientCert, ClientKey []byte
}

// The kubeconfig file format (clientcmd v1 Config), which kubectl reads as
// YAML; JSON is YAML, and encoding/json escapes every value, so no name or
// path can change the file's structure. []byte fields are base64, as the
// *-data fields want.
type config struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Clusters       []namedCluster `json:"clusters"`
	Users          []namedUser    `json:"users"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
}

type namedCluster struct {
	Name    string  `json:"name"`
	Cluster cluster `json:"cluster"`
}

type cluster struct {
	Server string `json:"server"`
	CA     []byte `json:"certificate-authority-data,omitempty"`
}

type namedUser struct {
	Name string   `json:"name"`
	User authInfo `json:"user"`
}

type authInfo struct {
	Token      string `json:"token"`
	ClientCert []byte `json:"client-certificate-data,omitempty"`
	ClientKey  []byte `json:"client-key-data,omitempty"`
}

type namedContext struct {
	Name    string  `json:"name"`
	Context context `json:"context"`
}

type context struct {
	Cluster   string `json:"cluster"`
	User      string `json:"user"`
	Namespace string `json:"namespace,omitempty"`
}

// Marshal returns k as a kubeconfig file (JSON, which kubectl reads).
func (k Kubeconfig) Marshal() ([]byte, error) {
	u, err := url.Parse(k.Server)
	switch {
	case err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		return nil, errors.New("kubeconfig: the gateway URL must be an absolute http or https URL")
	case k.Token == "":
		return nil, errors.New("kubeconfig: no token")
	case (len(k.ClientCert) == 0) != (len(k.ClientKey) == 0):
		return nil, errors.New("kubeconfig: a client certificate needs its key, and a key its certificate")
	case k.Name == "":
		return nil, errors.New("kubeconfig: no name")
	}
	c := config{
		APIVersion: "v1", Kind: "Config",
		Clusters:       []namedCluster{{k.Name, cluster{k.Server, k.CA}}},
		Users:          []namedUser{{k.Name, authInfo{k.Token, k.ClientCert, k.ClientKey}}},
		Contexts:       []namedContext{{k.Name, context{k.Name, k.Name, k.Namespace}}},
		CurrentContext: k.Name,
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
