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
	c := &cobra.Command{
		Use:   "add NAME --upstream URL [--credential-header 'H: V' ...] [--private-header H ...]",
		Short: "Register an upstream service",
		Long: `Register an upstream service. The gateway serves it at /NAME/... and adds each
--credential-header to the requests it forwards. Credential values are kept
encrypted and are never shown again by any command. Each --private-header
is removed from every request the gateway forwards to the service (a
cookie, or an identity header the upstream trusts).`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringVar(&upstream, "upstream", "", "upstream base URL, e.g. https://billing.internal")
	c.Flags().StringArrayVar(&headers, "credential-header", nil,
		"header the gateway injects, as 'Name: value', or @FILE / @- to read 'Name: value' lines from a file or stdin, keeping the secret out of argv (repeatable)")
	c.Flags().StringArrayVar(&private, "private-header", nil, "request header the gateway removes before forwarding to this service (repeatable)")
	_ = c.MarkFlagRequired("upstream")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		ns := adminapi.NewService{Name: args[0], Upstream: upstream, PrivateHeaders: private}
		hs, err := readHeaders(cmd.InOrStdin(), headers)
		if err != nil {
			return err
		}
		ns.CredentialHeaders = hs
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Service, error) {
			return c.AddService(ctx, ns)
		}, func(w io.Writer, s adminapi.Service) error {
			_, err := fmt.Fprintf(w, "added service %s\n", oneLine(s.Name))
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
