package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/gateway"
	"latchkey/internal/kube"
	"latchkey/internal/scope"
	"latchkey/internal/token"
)

// envGateway is the default of kubeconfig --gateway.
const envGateway = "LATCHKEY_GATEWAY"

// maxPEMFile caps the PEM files the kubernetes flags read.
const maxPEMFile = 64 << 10

// kubeFlags are service add's flags of a kubernetes service.
type kubeFlags struct {
	ca, token, clientCert, clientKey string
}

func (f *kubeFlags) set() bool {
	return f.ca != "" || f.token != "" || f.clientCert != "" || f.clientKey != ""
}

// credential reads the files the flags name. --kube-token is FILE or "-"
// (stdin): a token on the command line would stay in shell history.
func (f *kubeFlags) credential(stdin io.Reader) (*access.KubernetesCredential, error) {
	if f.ca == "" {
		return nil, usagef("a kubernetes service needs --kube-ca FILE, the API server's CA bundle")
	}
	if (f.token == "") == (f.clientCert == "" && f.clientKey == "") {
		return nil, usagef("a kubernetes service needs the gateway's credential: --kube-token FILE, or --kube-client-cert FILE and --kube-client-key FILE")
	}
	var c access.KubernetesCredential
	var err error
	if c.CA, err = readFile(stdin, "--kube-ca", f.ca); err != nil {
		return nil, err
	}
	if f.token != "" {
		if c.Token, err = readFile(stdin, "--kube-token", f.token); err != nil {
			return nil, err
		}
		c.Token = strings.TrimSpace(c.Token)
		return &c, nil
	}
	if f.clientCert == "" || f.clientKey == "" {
		return nil, usagef("--kube-client-cert and --kube-client-key go together")
	}
	if c.ClientCert, err = readFile(stdin, "--kube-client-cert", f.clientCert); err != nil {
		return nil, err
	}
	if c.ClientKey, err = readFile(stdin, "--kube-client-key", f.clientKey); err != nil {
		return nil, err
	}
	return &c, nil
}

// readFile reads a small file, or stdin for "-". Errors never hold its
// content.
func readFile(stdin io.Reader, flag, path string) (string, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", usagef("%s: %v", flag, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxPEMFile+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	if len(b) > maxPEMFile {
		return "", usagef("%s: larger than %d bytes", flag, maxPEMFile)
	}
	return string(b), nil
}

// kubeGrant are grant add's flags of a grant in Kubernetes terms.
type kubeGrant struct {
	service, namespace, verbs, resources string
}

func (k *kubeGrant) set() bool {
	return k.service != "" || k.namespace != "" || k.verbs != "" || k.resources != ""
}

// rule parses the flags.
func (k *kubeGrant) rule() (kube.Rule, error) {
	if k.service == "" || k.namespace == "" || k.verbs == "" {
		return kube.Rule{}, usagef("a kubernetes grant needs --k8s SERVICE, --namespace NS and --verbs V,... (--resources R,... is optional)")
	}
	r := kube.Rule{Namespace: k.namespace}
	var err error
	if r.Verbs, err = kube.ParseVerbs(k.verbs); err != nil {
		return r, usagef("--verbs: %v", err)
	}
	if k.resources != "" {
		if r.Resources, err = kube.ParseResources(k.resources); err != nil {
			return r, usagef("--resources: %v", err)
		}
	}
	return r, nil
}

// scopes expands the flags into scopes after checking that the service is
// a kubernetes service.
func (k *kubeGrant) scopes(ctx context.Context, c *adminapi.Client) ([]string, error) {
	r, err := k.rule()
	if err != nil {
		return nil, err
	}
	if err := kubeService(ctx, c, k.service); err != nil {
		return nil, err
	}
	ss, err := kube.Scopes(k.service, r)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return ss, nil
}

// kubeService fails unless name is a registered kubernetes service.
func kubeService(ctx context.Context, c *adminapi.Client, name string) error {
	svcs, err := c.Services(ctx)
	if err != nil {
		return err
	}
	for _, s := range svcs {
		if s.Name == name {
			if s.Kind != access.KindKubernetes {
				return &access.Error{Reason: access.ReasonInvalid, Msg: fmt.Sprintf("service %q is not a kubernetes service", name)}
			}
			return nil
		}
	}
	return &access.Error{Reason: access.ReasonNotFound, Msg: fmt.Sprintf("service %q not found", name)}
}

func kubeconfigCmd(g *globals) *cobra.Command {
	var k kubeconfigFlags
	c := &cobra.Command{
		Use:   "kubeconfig CONTRACTOR --service NAME --gateway URL [--gateway-ca FILE] --output FILE [--ttl DURATION | --token-file FILE] [--cert FILE --key FILE] [--namespace NS]",
		Short: "Write a kubeconfig that reaches a kubernetes service through the gateway",
		Long: `Write a kubeconfig file for CONTRACTOR that points kubectl at the kubernetes
service NAME through the gateway: server --gateway URL followed by /NAME,
trusting --gateway-ca FILE (the PEM CA of the gateway's certificate: the
CA that signed --gateway-tls-cert, or DATA/gateway-dev.crt with
--gateway-tls-dev; default $` + envGateway + ` for --gateway, and the system's
roots without --gateway-ca).

The token in it is, by default, a new one issued now to CONTRACTOR with every
scope of their live grants on NAME, for --ttl (default 8h); with
--token-file FILE (or - for stdin) it is that token instead. With --cert
FILE --key FILE the kubeconfig also holds that client certificate and key,
and a new token is bound to the certificate (--bind mtls, its x5t#S256
thumbprint): it then works only over TLS connections presenting it.

The file is written with mode 0600 (replacing FILE); the token is in it and
nowhere else: stdout gets one line naming the file and the token id. If
the file cannot be written, a token issued for it is revoked.
--namespace sets the context's default namespace (default: the one
namespace of the scopes, if there is exactly one).`,
		Args: cobra.ExactArgs(1),
	}
	f := c.Flags()
	f.StringVar(&k.service, "service", "", "the kubernetes service (required)")
	f.StringVar(&k.gateway, "gateway", "", "the gateway's base URL as kubectl reaches it, e.g. https://gw.example.com:8443 (default $"+envGateway+")")
	f.StringVar(&k.gatewayCA, "gateway-ca", "", "PEM CA certificate that verifies the gateway's certificate")
	f.StringVarP(&k.output, "output", "o", "", "the kubeconfig file to write, mode 0600 (required)")
	f.StringVar(&k.ttl, "ttl", "8h", "lifetime of the token issued for the kubeconfig")
	f.StringVar(&k.tokenFile, "token-file", "", "use this token (file holding it, or - for stdin) instead of issuing one")
	f.StringVar(&k.cert, "cert", "", "PEM client certificate to put in the kubeconfig (a new token is bound to it)")
	f.StringVar(&k.key, "key", "", "PEM private key of --cert")
	f.StringVar(&k.namespace, "namespace", "", "default namespace of the context")
	f.StringVar(&k.note, "note", "kubeconfig", "note kept with an issued token")
	_ = c.MarkFlagRequired("service")
	_ = c.MarkFlagRequired("output")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if k.tokenFile != "" && (cmd.Flags().Changed("ttl") || cmd.Flags().Changed("note")) {
			return usagef("--ttl and --note are for the token kubeconfig issues; --token-file gives one already issued")
		}
		return k.run(cmd, g, args[0])
	}
	return c
}

// kubeconfigFlags are the kubeconfig command's flags.
type kubeconfigFlags struct {
	service, gateway, gatewayCA, output, ttl, tokenFile, cert, key, namespace, note string
}

// check validates the flags that need no admin API, and reads the files.
func (k *kubeconfigFlags) check(stdin io.Reader) (kube.Kubeconfig, error) {
	var kc kube.Kubeconfig
	if k.gateway == "" {
		k.gateway = os.Getenv(envGateway)
	}
	switch {
	case k.gateway == "":
		return kc, usagef("no gateway URL: pass --gateway URL or set %s", envGateway)
	case slices.Contains([]string{"json", "text", "table"}, k.output):
		return kc, usagef("--output is the kubeconfig file to write here, not a format")
	case !scope.ValidServiceName(k.service):
		return kc, usagef("invalid service name %q", trunc(k.service))
	case (k.cert == "") != (k.key == ""):
		return kc, usagef("--cert and --key go together")
	case k.namespace != "" && !kube.ValidNamespace(k.namespace):
		return kc, usagef("invalid namespace %q", trunc(k.namespace))
	}
	if u, err := url.Parse(k.gateway); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return kc, usagef("--gateway: want the gateway's base URL, e.g. https://gw.example.com:8443")
	}
	kc.Name = "latchkey-" + k.service
	kc.Server = strings.TrimSuffix(k.gateway, "/") + "/" + k.service
	kc.Namespace = k.namespace
	if k.gatewayCA != "" {
		ca, err := readFile(stdin, "--gateway-ca", k.gatewayCA)
		if err != nil {
			return kc, err
		}
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(ca)) {
			return kc, usagef("--gateway-ca: no PEM certificate in %s", k.gatewayCA)
		}
		kc.CA = []byte(ca)
	}
	if k.cert != "" {
		cert, err := readFile(stdin, "--cert", k.cert)
		if err != nil {
			return kc, err
		}
		key, err := readFile(stdin, "--key", k.key)
		if err != nil {
			return kc, err
		}
		if _, err := tls.X509KeyPair([]byte(cert), []byte(key)); err != nil {
			return kc, usagef("--cert, --key: not a PEM certificate and its private key")
		}
		kc.ClientCert, kc.ClientKey = []byte(cert), []byte(key)
	}
	if k.tokenFile != "" {
		text, err := readFile(stdin, "--token-file", k.tokenFile)
		if err != nil {
			return kc, err
		}
		kc.Token = strings.TrimSpace(text)
		if _, err := token.Parse(kc.Token); err != nil || strings.HasPrefix(kc.Token, "lka_") {
			return kc, usagef("--token-file: not a latchkey contractor token")
		}
	}
	return kc, nil
}

// run writes the kubeconfig, issuing its token first unless given.
func (k *kubeconfigFlags) run(cmd *cobra.Command, g *globals, contractor string) error {
	kc, err := k.check(cmd.InOrStdin())
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	cl, err := g.client()
	if err != nil {
		return err
	}
	if err := kubeService(ctx, cl, k.service); err != nil {
		return err
	}
	id := ""
	if kc.Token == "" {
		issued, err := k.issue(ctx, cl, contractor, &kc)
		if err != nil {
			return err
		}
		id = issued.ID
	} else if p, err := token.Parse(kc.Token); err == nil {
		id = p.ID
	}
	if err := writeKubeconfig(k.output, kc); err != nil {
		if k.tokenFile == "" {
			if _, rerr := cl.RevokeToken(ctx, id); rerr != nil {
				return fmt.Errorf("%w (and revoking the token %s issued for it failed: %v)", err, id, rerr)
			}
		}
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %s for %s on %s (token %s)\n", k.output, oneLine(contractor), k.service, id)
	return err
}

// issue issues the kubeconfig's token: every scope of contractor's live
// grants on the service, bound to the client certificate if there is one.
func (k *kubeconfigFlags) issue(ctx context.Context, cl *adminapi.Client, contractor string, kc *kube.Kubeconfig) (adminapi.IssuedToken, error) {
	grants, err := cl.Grants(ctx, contractor, true)
	if err != nil {
		return adminapi.IssuedToken{}, err
	}
	var scopes []string
	namespaces := map[string]bool{}
	for _, gr := range grants {
		for _, s := range gr.Scopes {
			sc, err := scope.Parse(s)
			if err != nil || sc.Service() != k.service || slices.Contains(scopes, s) {
				continue
			}
			scopes = append(scopes, s)
			if a, ok := kube.Describe(sc); ok {
				namespaces[a.Namespace] = true
			}
		}
	}
	if len(scopes) == 0 {
		return adminapi.IssuedToken{}, &access.Error{Reason: access.ReasonInvalid,
			Msg: fmt.Sprintf("%s has no live grant on service %q: grant one first (grant add %s --k8s %s ...)", contractor, k.service, contractor, k.service)}
	}
	if kc.Namespace == "" && len(namespaces) == 1 {
		for ns := range namespaces {
			kc.Namespace = ns
		}
	}
	nt := adminapi.NewToken{Contractor: contractor, Scopes: scopes, TTL: k.ttl, Note: k.note}
	if len(kc.ClientCert) > 0 {
		b, _ := pem.Decode(kc.ClientCert)
		nt.Bind, nt.X5T = "mtls", gateway.Thumbprint(b.Bytes)
	}
	issued, err := cl.IssueToken(ctx, nt)
	if err != nil {
		return issued, err
	}
	kc.Token = issued.Token
	return issued, nil
}

// writeKubeconfig writes kc to path with mode 0600, atomically: a
// temporary file beside it (created 0600) renamed over it.
func writeKubeconfig(path string, kc kube.Kubeconfig) error {
	b, err := kc.Marshal()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kubeconfig-*")
	if err != nil {
		return fmt.Errorf("failed to write kubeconfig: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write kubeconfig: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write kubeconfig: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write kubeconfig: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("failed to write kubeconfig: %w", err)
	}
	return nil
}
