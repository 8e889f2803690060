package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"latchkey/internal/kube"
	"latchkey/internal/token"
)

// kubectlPath returns the kubectl to test with. Without one the kubectl
// tests skip, or fail when LATCHKEY_KUBECTL_REQUIRED is set (test.sh
// installs Debian's kubernetes-client and sets it).
func kubectlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("LATCHKEY_KUBECTL_REQUIRED") != "" {
			t.Fatalf("kubectl not found and LATCHKEY_KUBECTL_REQUIRED is set: %v", err)
		}
		t.Skip("kubectl not found (apt-get install kubernetes-client)")
	}
	return p
}

// latchkeyBinary builds the latchkey command (the CLI under test) into a
// temporary directory.
func latchkeyBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "latchkey")
	out, err := exec.Command("go", "build", "-o", bin, "latchkey/cmd/latchkey").CombinedOutput()
	if err != nil {
		t.Fatalf("go build latchkey: %v\n%s", err, out)
	}
	return bin
}

// kubeRig is serve (in process, as the other server tests run it) with a TLS gateway on
// 127.0.0.1, driven by the real latchkey command line: a fake API server
// registered as kubernetes service "prod" with the gateway's token
// "gw-sa-token", and contractor alice granted get, list and watch of pods
// in namespace dev (grant add --k8s).
type kubeRig struct {
	t       *testing.T
	bin     string
	dir     string // scratch files
	env     []string
	gateway string // the gateway's base URL
	gwCA    string // PEM file of the gateway's certificate
	kube    *fakeKube
	kubectl string
}

func newKubeRig(t *testing.T) *kubeRig {
	t.Helper()
	kubectl := kubectlPath(t)
	r := &kubeRig{t: t, bin: latchkeyBinary(t), dir: t.TempDir(), kube: newFakeKube(t), kubectl: kubectl}
	certFile, keyFile, _ := selfSigned(t, r.dir)
	r.gwCA = certFile
	cfg := testConfig(newDir(t), &syncBuffer{})
	cfg.GatewayTLSCert, cfg.GatewayTLSKey = certFile, keyFile
	srv := start(t, cfg)
	r.env = append(os.Environ(), "LATCHKEY_ADDR="+srv.url, "LATCHKEY_TOKEN="+adminToken(t, srv.stdout.String()))
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, gatewayFile))
	if err != nil {
		t.Fatal(err)
	}
	r.gateway = strings.TrimSpace(string(b))
	if !strings.HasPrefix(r.gateway, "https://127.0.0.1:") {
		t.Fatalf("gateway URL %q, want https on 127.0.0.1", r.gateway)
	}
	ca := r.write("api-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.kube.srv.Certificate().Raw})))
	sa := r.write("sa-token", "gw-sa-token\n")
	r.latchkey("service", "add", "prod", "--kind", "kubernetes", "--upstream", r.kube.srv.URL, "--kube-ca", ca, "--kube-token", sa)
	r.latchkey("contractor", "add", "alice", "--email", "alice@example.com", "--sponsor", "bob", "--until", "10d")
	r.latchkey("grant", "add", "alice", "--k8s", "prod", "--namespace", "dev", "--verbs", "get,list,watch", "--resources", "pods")
	return r
}

// write writes a scratch file and returns its path.
func (r *kubeRig) write(name, content string) string {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// latchkey runs the latchkey command line against serve and returns its
// stdout; it fails the test unless the command succeeds.
func (r *kubeRig) latchkey(args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.bin, args...)
	cmd.Env = r.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("latchkey %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// kubeconfig runs `latchkey kubeconfig alice` with args and returns the
// file written and the id of its token, checking that the file is 0600
// and that nothing but the file holds the token.
func (r *kubeRig) kubeconfig(name string, args ...string) (path, id string) {
	r.t.Helper()
	path = filepath.Join(r.dir, name)
	out := r.latchkey(append([]string{"kubeconfig", "alice", "--service", "prod", "--gateway", r.gateway,
		"--gateway-ca", r.gwCA, "--output", path, "--ttl", "1h"}, args...)...)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		r.t.Fatalf("kubeconfig %s: %v, mode %v; want 0600", path, err, st.Mode())
	}
	b, _ := os.ReadFile(path)
	var cfg struct {
		Users []struct {
			User struct{ Token string } `json:"user"`
		} `json:"users"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil || len(cfg.Users) != 1 {
		r.t.Fatalf("kubeconfig: %v\n%s", err, b)
	}
	text := cfg.Users[0].User.Token
	p, err := token.Parse(text)
	if err != nil {
		r.t.Fatalf("kubeconfig token: %v", err)
	}
	if strings.Contains(out, text) || !strings.Contains(out, p.ID) {
		r.t.Fatalf("kubeconfig stdout %q: want the token id and not the token", out)
	}
	return path, p.ID
}

// kubectlResult is how a kubectl run ended.
type kubectlResult struct {
	stdout, stderr string
	err            error
}

// run runs kubectl with kubeconfig and args, HOME a scratch directory, and
// a timeout.
func (r *kubeRig) run(kubeconfig string, args ...string) kubectlResult {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 60*time.Second)
	defer cancel()
	cmd := r.command(ctx, kubeconfig, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		r.t.Fatalf("kubectl %s did not finish within 60s\n%s", strings.Join(args, " "), stderr.String())
	}
	return kubectlResult{stdout.String(), stderr.String(), err}
}

func (r *kubeRig) command(ctx context.Context, kubeconfig string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.kubectl, append([]string{"--kubeconfig", kubeconfig, "--request-timeout", "0"}, args...)...)
	home := filepath.Join(r.dir, "home")
	os.MkdirAll(home, 0o700)
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	return cmd
}

// checkUpstream checks every request the fake API server received: the
// gateway's own token, alice as Impersonate-User, latchkey:contractors as
// Impersonate-Group, no other impersonation header and never the
// contractor's token; and that no request was for a secret.
func (r *kubeRig) checkUpstream(kubeconfig string) {
	r.t.Helper()
	b, _ := os.ReadFile(kubeconfig)
	var cfg struct {
		Users []struct {
			User struct{ Token string } `json:"user"`
		} `json:"users"`
	}
	json.Unmarshal(b, &cfg)
	text := cfg.Users[0].User.Token
	seen := r.kube.seen()
	if len(seen) == 0 {
		r.t.Fatal("the fake API server received nothing")
	}
	for _, q := range seen {
		if got := q.header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer gw-sa-token" {
			r.t.Errorf("%s %s: Authorization %q, want the gateway's own token only", q.method, q.uri, got)
		}
		var imp []string
		for k, vs := range q.header {
			if strings.HasPrefix(strings.ToLower(k), "impersonate-") {
				imp = append(imp, k+"="+strings.Join(vs, ","))
			}
			if strings.Contains(strings.Join(vs, " "), text) {
				r.t.Errorf("%s %s: the contractor's token reached the API server in %s", q.method, q.uri, k)
			}
		}
		if len(imp) != 2 || q.header.Get("Impersonate-User") != "latchkey:alice" || len(q.header.Values("Impersonate-User")) != 1 ||
			q.header.Get("Impersonate-Group") != kube.Group || len(q.header.Values("Impersonate-Group")) != 1 {
			r.t.Errorf("%s %s: impersonation headers %q, want Impersonate-User latchkey:alice and Impersonate-Group %s only", q.method, q.uri, imp, kube.Group)
		}
		if strings.Contains(q.uri, "secrets") {
			r.t.Errorf("%s %s reached the API server", q.method, q.uri)
		}
	}
}

// TestKubectl drives the real kubectl through serve's gateway with a
// kubeconfig from `latchkey kubeconfig` (bearer token): it lists pods in
// dev, is refused secrets in kube-system with a Forbidden ... scope_denied
// message, cannot impersonate anyone else (--as), and a running watch ends
// when the token is revoked. The access report shows the grant in
// Kubernetes terms.
func TestKubectl(t *testing.T) {
	r := newKubeRig(t)
	kc, id := r.kubeconfig("alice.kubeconfig")

	res := r.run(kc, "get", "pods", "-n", "dev")
	if res.err != nil || !strings.Contains(res.stdout, "web-1") {
		t.Fatalf("kubectl get pods -n dev: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	// The context's namespace is dev (the grant's only namespace).
	if res := r.run(kc, "get", "pods"); res.err != nil || !strings.Contains(res.stdout, "web-1") {
		t.Fatalf("kubectl get pods (default namespace): %v\n%s", res.err, res.stderr)
	}

	res = r.run(kc, "get", "secrets", "-n", "kube-system")
	if res.err == nil || !strings.Contains(res.stderr, "Forbidden") || !strings.Contains(res.stderr, "scope_denied") {
		t.Fatalf("kubectl get secrets -n kube-system: %v, want refused with Forbidden and scope_denied\nstderr:\n%s", res.err, res.stderr)
	}
	t.Logf("kubectl get secrets -n kube-system: %s", strings.TrimSpace(res.stderr))

	// kubectl --as sends Impersonate-User and Impersonate-Group: the
	// gateway replaces them, so this is alice's request.
	res = r.run(kc, "get", "pods", "-n", "dev", "--as", "system:admin", "--as-group", "system:masters")
	if res.err != nil || !strings.Contains(res.stdout, "web-1") {
		t.Fatalf("kubectl get pods --as system:admin: %v\n%s", res.err, res.stderr)
	}
	r.checkUpstream(kc)

	var rows []struct {
		Service    string       `json:"service"`
		Kubernetes *kube.Access `json:"kubernetes"`
	}
	if err := json.Unmarshal([]byte(r.latchkey("report", "access", "--contractor", "alice", "--output", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	verbs := map[string]bool{}
	for _, row := range rows {
		if row.Service != "prod" || row.Kubernetes == nil || row.Kubernetes.Namespace != "dev" || row.Kubernetes.Resource != "pods" {
			t.Errorf("access row %+v, want prod, namespace dev, pods", row)
			continue
		}
		for _, v := range row.Kubernetes.Verbs {
			verbs[v] = true
		}
	}
	if len(verbs) != 3 || !verbs["get"] || !verbs["list"] || !verbs["watch"] {
		t.Errorf("access report verbs %v, want get, list and watch", verbs)
	}
	if table := r.latchkey("report", "access", "--contractor", "alice"); !regexp.MustCompile(`(?m)^alice\s+prod\s+get,list,watch\s+namespace dev pods\s`).MatchString(table) {
		t.Errorf("access report table:\n%s", table)
	}

	// A watch, then the token is revoked: kubectl's stream ends.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	watch := r.command(ctx, kc, "get", "pods", "-n", "dev", "-w")
	var wout, werr bytes.Buffer
	watch.Stdout, watch.Stderr = &wout, &werr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- watch.Wait() }()
	select {
	case p := <-r.kube.watching:
		t.Logf("kubectl is watching %s", p)
	case err := <-done:
		t.Fatalf("kubectl get pods -w ended before watching: %v\n%s", err, werr.String())
	case <-ctx.Done():
		t.Fatalf("kubectl get pods -w never started its watch\n%s", werr.String())
	}
	revoked := time.Now()
	r.latchkey("token", "revoke", id)
	select {
	case err := <-done:
		t.Logf("kubectl get pods -w ended %v after the revocation: %v %s", time.Since(revoked).Round(time.Millisecond), err, strings.TrimSpace(werr.String()))
	case <-time.After(10 * time.Second):
		t.Fatalf("kubectl get pods -w still running 10s after its token was revoked\n%s", werr.String())
	}
	// And the revoked token is refused as a Status kubectl shows.
	if res := r.run(kc, "get", "pods", "-n", "dev"); res.err == nil || !strings.Contains(res.stderr, "Unauthorized") && !strings.Contains(res.stderr, "token_revoked") {
		t.Fatalf("kubectl with a revoked token: %v\n%s", res.err, res.stderr)
	}
}

// TestKubectlMTLS: a kubeconfig written with --cert and --key holds a
// token bound to that certificate (--bind mtls --x5t) and the certificate,
// and kubectl works with it as written; the same token without the
// certificate (the kubeconfig with its client-certificate fields removed)
// is refused.
func TestKubectlMTLS(t *testing.T) {
	r := newKubeRig(t)
	cert, x5t := newClientCert(t, "alice")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile := r.write("alice.crt", string(certPEM))
	keyFile := r.write("alice.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	kc, id := r.kubeconfig("alice-mtls.kubeconfig", "--cert", certFile, "--key", keyFile)

	var tok struct {
		Cnf *struct {
			X5T string `json:"x5t#S256"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal([]byte(r.latchkey("token", "show", id, "--output", "json")), &tok); err != nil {
		t.Fatal(err)
	}
	if tok.Cnf == nil || tok.Cnf.X5T != x5t {
		t.Fatalf("token %s cnf %+v, want bound to x5t %s", id, tok.Cnf, x5t)
	}
	res := r.run(kc, "get", "pods", "-n", "dev")
	if res.err != nil || !strings.Contains(res.stdout, "web-1") {
		t.Fatalf("kubectl get pods -n dev with the mTLS kubeconfig: %v\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	r.checkUpstream(kc)

	// Without the certificate, the bound token is refused.
	b, _ := os.ReadFile(kc)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	user := m["users"].([]any)[0].(map[string]any)["user"].(map[string]any)
	delete(user, "client-certificate-data")
	delete(user, "client-key-data")
	stripped, _ := json.Marshal(m)
	bare := r.write("bare.kubeconfig", string(stripped))
	before := len(r.kube.seen())
	res = r.run(bare, "get", "pods", "-n", "dev")
	if res.err == nil || !strings.Contains(res.stderr, "Unauthorized") && !strings.Contains(res.stderr, "proof_invalid") {
		t.Fatalf("bound token without its certificate: %v, want refused\nstdout:\n%s\nstderr:\n%s", res.err, res.stdout, res.stderr)
	}
	if got := len(r.kube.seen()); got != before {
		t.Errorf("the API server received %d requests of a refused token", got-before)
	}
	var exit *exec.ExitError
	if !errors.As(res.err, &exit) {
		t.Errorf("kubectl: %v, want a non-zero exit", res.err)
	}
}

// kubectlMinor returns kubectl's client minor version (20 for v1.20).
func (r *kubeRig) kubectlMinor() int {
	r.t.Helper()
	out, err := exec.Command(r.kubectl, "version", "--client", "-o", "json").Output()
	var v struct {
		ClientVersion struct{ Minor string } `json:"clientVersion"`
	}
	if err != nil || json.Unmarshal(out, &v) != nil {
		r.t.Fatalf("kubectl version: %v %s", err, out)
	}
	n, _ := strconv.Atoi(strings.TrimSuffix(v.ClientVersion.Minor, "+"))
	return n
}

// waitStream starts kubectl with args, waits until the fake API server
// has its stream open, revokes the token id, and checks that kubectl ends
// and the server's side of the stream is closed within 10 seconds.
func (r *kubeRig) waitStream(kubeconfig, id string, args ...string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 60*time.Second)
	defer cancel()
	cmd := r.command(ctx, kubeconfig, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case p := <-r.kube.streams:
		r.t.Logf("kubectl %s: stream %s open", strings.Join(args, " "), p)
	case err := <-done:
		r.t.Fatalf("kubectl %s ended before its stream opened: %v\n%s", strings.Join(args, " "), err, stderr.String())
	case <-ctx.Done():
		r.t.Fatalf("kubectl %s never opened its stream\n%s", strings.Join(args, " "), stderr.String())
	}
	revoked := time.Now()
	r.latchkey("token", "revoke", id)
	select {
	case err := <-done:
		r.t.Logf("kubectl %s ended %v after the revocation: %v; stdout %q", strings.Join(args, " "),
			time.Since(revoked).Round(time.Millisecond), err, out.String())
	case <-time.After(10 * time.Second):
		r.t.Fatalf("kubectl %s still running 10s after its token was revoked\n%s", strings.Join(args, " "), stderr.String())
	}
	select {
	case <-r.kube.ended:
	case <-time.After(10 * time.Second):
		r.t.Fatal("the API server's side of the stream still open 10s after the revocation")
	}
}

// TestKubectlStreams: kubectl logs -f and kubectl exec (WebSocket, kubectl
// 1.30 and later; older ones speak only SPDY, which the gateway test
// TestKubeSPDYUpgrade covers) through the gateway, each cut when its
// token is revoked.
func TestKubectlStreams(t *testing.T) {
	r := newKubeRig(t)
	r.latchkey("grant", "add", "alice", "--k8s", "prod", "--namespace", "dev", "--verbs", "get,create", "--resources", "pods/log,pods/exec")

	kc, id := r.kubeconfig("logs.kubeconfig")
	if res := r.run(kc, "logs", "web-1"); res.err != nil || res.stdout != "log line 1\n" {
		t.Fatalf("kubectl logs web-1: %v %q\n%s", res.err, res.stdout, res.stderr)
	}
	r.waitStream(kc, id, "logs", "-f", "web-1")

	if minor := r.kubectlMinor(); minor < 30 {
		t.Logf("kubectl 1.%d speaks SPDY only for exec: exec through kubectl not tested here", minor)
		r.checkUpstream(kc)
		return
	}
	kc2, id2 := r.kubeconfig("exec.kubeconfig")
	if res := r.run(kc2, "exec", "web-1", "--", "echo", "hi", "there"); res.err != nil || res.stdout != "hi there\n" {
		t.Fatalf("kubectl exec web-1 -- echo: %v %q\n%s", res.err, res.stdout, res.stderr)
	}
	r.waitStream(kc2, id2, "exec", "web-1", "--", "sleep", "600")
	r.checkUpstream(kc2)
}
