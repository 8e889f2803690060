package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
)

func serviceCmd(g *globals) *cobra.Command {
	return group("service", "Register and list upstream services", serviceAddCmd(g), serviceListCmd(g))
}

func serviceAddCmd(g *globals) *cobra.Command {
	var upstream string
	var headers, private []string
	var db dbFlags
	var kf kubeFlags
	var kind string
	c := &cobra.Command{
		Use:   "add NAME --upstream URL [--credential-header 'H: V' ...] [--private-header H ...] | add NAME --upstream postgres://HOST:PORT --read-user U --read-password @FILE --write-user U --write-password @FILE | add NAME --kind kubernetes --upstream https://APISERVER --kube-ca FILE (--kube-token FILE | --kube-client-cert FILE --kube-client-key FILE)",
		Short: "Register an upstream service",
		Long: `Register an upstream service. The gateway serves it at /NAME/... and adds each
--credential-header to the requests it forwards. Credential values are kept
encrypted and are never shown again by any command. Each --private-header
is removed from every request the gateway forwards to the service (a
cookie, or an identity header the upstream trusts).

An upstream postgres://HOST[:PORT][?sslmode=MODE] registers a PostgreSQL
service, reached through serve's PostgreSQL gateway (--pg-addr) with the
database "NAME/DATABASE". It takes two upstream logins: --read-user, a role
with only read privileges (SELECT), used for sessions of read scopes
(NAME:read:/DATABASE), and --write-user, used for write scopes
(NAME:write:/DATABASE). Read-only is enforced by PostgreSQL's own
privileges. Passwords are sealed like credential headers; give them as
@FILE, or @- to read stdin (when both are @-, stdin holds the read
password on its first line and the write password on its second).

--kind kubernetes registers a Kubernetes API server at its https URL.
--kube-ca FILE is the PEM CA bundle that verifies it (the only roots the
gateway trusts for it); the gateway authenticates as itself with
--kube-token FILE (a bearer token, e.g. a service account's; - reads
stdin) or --kube-client-cert FILE --kube-client-key FILE, all sealed like
credential headers. That identity needs only the right to impersonate
users named latchkey:CONTRACTOR and the group latchkey:contractors: the
gateway forwards each request with Impersonate-User: latchkey:CONTRACTOR and
Impersonate-Group: latchkey:contractors (removing any Impersonate-* and X-Remote-* header
the client sent), so the cluster's RBAC and audit log see the contractor.
Grant access with "grant add CONTRACTOR --k8s NAME --namespace NS --verbs
...", and give the contractor a kubeconfig with "latchkey kubeconfig".`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringVar(&upstream, "upstream", "", "upstream base URL, e.g. https://billing.internal")
	c.Flags().StringArrayVar(&headers, "credential-header", nil,
		"header the gateway injects, as 'Name: value', or @FILE / @- to read 'Name: value' lines from a file or stdin, keeping the secret out of argv (repeatable)")
	c.Flags().StringArrayVar(&private, "private-header", nil, "request header the gateway removes before forwarding to this service (repeatable)")
	c.Flags().StringVar(&db.readUser, "read-user", "", "postgres service: upstream role with only read privileges, for read scopes")
	c.Flags().StringVar(&db.readPassword, "read-password", "", "postgres service: the read role's password, as @FILE or @- (stdin); a literal value would stay in shell history")
	c.Flags().StringVar(&db.writeUser, "write-user", "", "postgres service: upstream role for write scopes")
	c.Flags().StringVar(&db.writePassword, "write-password", "", "postgres service: the write role's password, as @FILE or @- (stdin)")
	c.Flags().StringVar(&kind, "kind", "", "service kind: kubernetes (default: http or postgres, by the upstream's scheme)")
	c.Flags().StringVar(&kf.ca, "kube-ca", "", "kubernetes service: PEM CA bundle of the API server")
	c.Flags().StringVar(&kf.token, "kube-token", "", "kubernetes service: file holding the gateway's bearer token for the API server, or - for stdin")
	c.Flags().StringVar(&kf.clientCert, "kube-client-cert", "", "kubernetes service: PEM client certificate the gateway presents to the API server")
	c.Flags().StringVar(&kf.clientKey, "kube-client-key", "", "kubernetes service: PEM private key of --kube-client-cert")
	_ = c.MarkFlagRequired("upstream")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		ns := adminapi.NewService{Name: args[0], Upstream: upstream, PrivateHeaders: private}
		added := "added service %s\n"
		switch {
		case kind != "" && kind != access.KindKubernetes:
			return usagef("--kind: want kubernetes (http and postgres services follow from the upstream's scheme)")
		case kind == "" && kf.set():
			return usagef("--kube-* flags need --kind kubernetes")
		case kind == access.KindKubernetes:
			if len(headers) > 0 || len(private) > 0 || db.set() {
				return usagef("a kubernetes service takes --kube-ca and --kube-token or --kube-client-cert and --kube-client-key only")
			}
			cred, err := kf.credential(cmd.InOrStdin())
			if err != nil {
				return err
			}
			ns.Kubernetes, added = cred, "added kubernetes service %s\n"
		case db.set():
			if len(headers) > 0 || len(private) > 0 {
				return usagef("a postgres service takes --read-user and --write-user, not --credential-header or --private-header")
			}
			logins, err := db.logins(cmd.InOrStdin())
			if err != nil {
				return err
			}
			ns.DatabaseLogins, added = logins, "added postgres service %s\n"
		default:
			hs, err := readHeaders(cmd.InOrStdin(), headers)
			if err != nil {
				return err
			}
			ns.CredentialHeaders = hs
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Service, error) {
			return c.AddService(ctx, ns)
		}, func(w io.Writer, s adminapi.Service) error {
			_, err := fmt.Fprintf(w, added, oneLine(s.Name))
			return err
		})
	}
	return c
}

func serviceListCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "List services (never their credential values)",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return runAPIList(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]adminapi.Service, error) {
			return c.Services(ctx)
		}, serviceTable)
	}
	return c
}

// serviceTable writes services as a table.
func serviceTable(w io.Writer, ss []adminapi.Service) error {
	t := newTable(w, "NAME", "UPSTREAM", "CREDENTIAL HEADERS", "PRIVATE HEADERS", "CREATED")
	for _, s := range ss {
		private := list(s.PrivateHeaders)
		if private == "" {
			private = "-"
		}
		t.row(s.Name, s.Upstream, list(s.CredentialHeaders), private, when(s.CreatedAt))
	}
	return t.flush()
}

// maxHeaderFile caps what --credential-header @FILE reads.
const maxHeaderFile = 64 << 10

// readHeaders parses --credential-header values; a value @FILE (or @- for
// stdin) stands for the 'Name: value' lines of that file, blank lines
// skipped, so the secret need not appear on the command line.
func readHeaders(stdin io.Reader, values []string) ([]access.Header, error) {
	var out []access.Header
	for _, v := range values {
		lines := []string{v}
		if path, ok := strings.CutPrefix(v, "@"); ok {
			text, err := readSmall(stdin, path)
			if err != nil {
				return nil, err
			}
			lines = strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
		}
		for _, line := range lines {
			if v != line && strings.TrimSpace(line) == "" {
				continue
			}
			h, err := parseHeader(line)
			if err != nil {
				return nil, err
			}
			out = append(out, h)
		}
	}
	return out, nil
}

// readSmall reads a file (or stdin for "-") of at most maxHeaderFile bytes.
func readSmall(stdin io.Reader, path string) (string, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", usagef("--credential-header @%s: %v", path, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxHeaderFile+1))
	if err != nil {
		return "", fmt.Errorf("--credential-header @%s: %w", path, err)
	}
	if len(b) > maxHeaderFile {
		return "", usagef("--credential-header @%s: larger than %d bytes", path, maxHeaderFile)
	}
	return string(b), nil
}

// parseHeader parses a --credential-header value "Name: value": the name
// is what precedes the first colon, the value what follows it, both with
// surrounding spaces trimmed. The name must be an HTTP field name and the
// value non-empty without control characters. Errors never contain the
// value, nor the input when it has no valid name (it may be all secret).
func parseHeader(s string) (access.Header, error) {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || !validFieldName(name) {
		return access.Header{}, usagef("--credential-header: want 'Name: value' with an HTTP header name before the colon")
	}
	if value == "" {
		return access.Header{}, usagef("--credential-header %s: the value is empty", name)
	}
	for _, r := range value {
		if (r < ' ' && r != '\t') || r == 0x7f {
			return access.Header{}, usagef("--credential-header %s: the value contains a control character", name)
		}
	}
	return access.Header{Name: name, Value: value}, nil
}

// validFieldName reports whether s is an HTTP field name (RFC 9110 token).
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// dbFlags are the login flags of a postgres service.
type dbFlags struct {
	readUser, readPassword, writeUser, writePassword string
}

func (f *dbFlags) set() bool {
	return f.readUser != "" || f.readPassword != "" || f.writeUser != "" || f.writePassword != ""
}

// logins reads the two logins. Passwords come from @FILE or @- (stdin);
// when both are @-, stdin's first line is the read password and its
// second the write password. A trailing newline is not part of a
// password. Errors never contain a password.
func (f *dbFlags) logins(stdin io.Reader) (*access.DatabaseLogins, error) {
	if f.readUser == "" || f.writeUser == "" || f.readPassword == "" || f.writePassword == "" {
		return nil, usagef("a postgres service needs --read-user, --read-password, --write-user and --write-password")
	}
	var stdinLines []string
	if f.readPassword == "@-" && f.writePassword == "@-" {
		text, err := readSmall(stdin, "-")
		if err != nil {
			return nil, err
		}
		stdinLines = strings.Split(strings.TrimRight(strings.ReplaceAll(text, "\r\n", "\n"), "\n"), "\n")
		if len(stdinLines) != 2 {
			return nil, usagef("--read-password @- --write-password @-: stdin must hold two lines, the read password then the write password")
		}
	}
	read, err := password("read", f.readPassword, stdin, stdinLines, 0)
	if err != nil {
		return nil, err
	}
	write, err := password("write", f.writePassword, stdin, stdinLines, 1)
	if err != nil {
		return nil, err
	}
	return &access.DatabaseLogins{
		Read:  access.DatabaseLogin{User: f.readUser, Password: read},
		Write: access.DatabaseLogin{User: f.writeUser, Password: write},
	}, nil
}

// password reads one --X-password value: @FILE, @- or (discouraged) the
// literal value.
func password(what, v string, stdin io.Reader, lines []string, i int) (string, error) {
	path, ok := strings.CutPrefix(v, "@")
	if !ok {
		return v, nil
	}
	if lines != nil {
		return lines[i], nil
	}
	text, err := readSmall(stdin, path)
	if err != nil {
		return "", fmt.Errorf("--%s-password: %w", what, err)
	}
	text = strings.TrimSuffix(strings.TrimSuffix(text, "\n"), "\r")
	if text == "" || strings.ContainsAny(text, "\n\x00") {
		return "", usagef("--%s-password @%s: want one line holding the password", what, path)
	}
	return text, nil
}
