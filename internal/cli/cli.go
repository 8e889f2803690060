// Package cli implements the latchkey command line: the subcommands, their
// flags and arguments, the environment variables LATCHKEY_ADDR and
// LATCHKEY_TOKEN (read here and nowhere else), the table and JSON output,
// and the mapping of errors to exit statuses.
//
// The contractor side lives here too: "key new" and "key thumbprint"
// (default key file $LATCHKEY_KEY) and "call", the curl-like client that
// sends $LATCHKEY_CONTRACTOR_TOKEN to the gateway with a DPoP proof per
// request (package proof builds them).
//
// Exit statuses:
//
//	0  success
//	1  the operation was refused by the server or failed (network, I/O)
//	2  bad usage: unknown command or flag, missing or malformed argument
//
// Every error is printed as exactly one line on stderr, "latchkey: MESSAGE",
// followed for a server refusal by its stable reason word in parentheses:
// "latchkey: scope "x" is not covered ... (scope_not_covered)".
//
// No command prints a token secret, except issue, rotate, derive, init and
// request fetch, which print the new token once on stdout, and no command
// ever prints a service credential value.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"latchkey/internal/adminapi"
	"latchkey/internal/timespec"
	"latchkey/internal/token"
)

// Exit statuses returned by ExitCode.
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitUsage   = 2
	defaultAddr = "http://127.0.0.1:7370"
)

// Environment variables read by the command line.
const (
	envAddr  = "LATCHKEY_ADDR"
	envToken = "LATCHKEY_TOKEN"
	envCA    = "LATCHKEY_CACERT"
)

// usageError is bad usage detected by a command before any request: exit
// status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// opError is an error returned by a command once it started its operation:
// exit status 1.
type opError struct{ err error }

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// ExitCode maps an error returned by Run to an exit status: 0 for nil, 2
// for bad usage (including every error cobra reports while parsing the
// command line), 1 for everything else: server refusals, connection and
// I/O errors.
func ExitCode(err error) int {
	var ue *usageError
	var oe *opError
	var ae *adminapi.APIError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &oe), errors.As(err, &ae):
		return ExitFailed
	}
	return ExitUsage
}

// Message returns the one line printed after "latchkey: " for err. A
// server refusal ends with its reason word in parentheses. Line breaks and
// other control characters are replaced by spaces, and anything that looks
// like a token text (say, a token pasted where a command was expected and
// echoed by "unknown command") is cut to its prefix and id.
func Message(err error) string {
	msg := err.Error()
	var ae *adminapi.APIError
	if errors.As(err, &ae) && ae.Problem.Error != "" {
		msg = fmt.Sprintf("%s (%s)", msg, ae.Problem.Error)
	}
	return redact(oneLine(msg))
}

// tokenText matches token texts, as package token documents for scanners.
var tokenText = regexp.MustCompile(token.Pattern)

// redact replaces each token text in s by its prefix and id, as in
// "lk_0123456789AB…".
func redact(s string) string {
	return tokenText.ReplaceAllStringFunc(s, func(t string) string {
		prefix, body, _ := strings.Cut(t, "_")
		return prefix + "_" + body[:12] + "…"
	})
}

// oneLine trims s and replaces control characters with spaces, so that it
// prints as a single line or table cell.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Map(func(r rune) rune {
		// Controls (C0, DEL, C1) and bidirectional overrides could
		// rewrite the terminal or disguise text: print a space instead.
		if unicode.IsControl(r) || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f {
			return ' '
		}
		return r
	}, s)
}

// Run runs the command line with args (without the program name), writing
// results to stdout and messages to stderr. On error it prints the one
// line "latchkey: MESSAGE" on stderr and returns the error; ExitCode maps
// it to the exit status. Cancelling ctx (SIGINT, SIGTERM) stops serve
// gracefully and aborts requests in flight.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	if args == nil {
		args = []string{}
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "latchkey: %s\n", Message(err))
	}
	return err
}

// globals are the persistent flags of the root command.
type globals struct {
	addr   string
	token  string
	caCert string
}

// newRoot builds the command tree.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "latchkey",
		Short: "Least-privilege, expiring, audited API tokens for contractors",
		Long: `latchkey issues contractors least-privilege, always-expiring, revocable API
tokens and records every use in a tamper-evident log.

The admin commands talk to the admin API at $LATCHKEY_ADDR (default
` + defaultAddr + `) with the admin token in $LATCHKEY_TOKEN; --addr and
--token override them. Prefer the environment variable for the token: a
flag is visible to other users in the process list.

Exit status: 0 on success, 1 on a refused or failed operation, 2 on bad
usage.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.addr, "addr", "", "admin API base URL (default $"+envAddr+" or "+defaultAddr+")")
	pf.StringVar(&g.token, "token", "", "admin token (default $"+envToken+")")
	pf.StringVar(&g.caCert, "ca-cert", "", "PEM CA certificate to trust for an https admin address (default $"+envCA+")")
	root.AddCommand(
		initCmd(), serveCmd(),
		serviceCmd(g), contractorCmd(g), grantCmd(g), tokenCmd(g), reportCmd(g),
		whoamiCmd(g), auditCmd(g), webhookCmd(g), requestCmd(g), approverCmd(g), policyCmd(g),
		benchCmd(), keyCmd(), callCmd(g), kubeconfigCmd(g),
	)
	// cobra's completion command holds one subcommand per shell but does
	// not run itself: make "completion ksh" a usage error like any other
	// unknown subcommand.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" && c.RunE == nil && c.Run == nil {
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	}
	markOperations(root)
	return root
}

// markOperations wraps the RunE of c and of every command below it so
// that an error it returns is an opError (exit 1) unless it is a
// usageError. Errors cobra itself reports (unknown command, missing
// argument or required flag) never pass through RunE and stay usage
// errors.
func markOperations(c *cobra.Command) {
	c.DisableFlagsInUseLine = true // every Use line spells out its flags
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			var ue *usageError
			if err == nil || errors.As(err, &ue) {
				return err
			}
			return &opError{err}
		}
	}
	for _, sub := range c.Commands() {
		markOperations(sub)
	}
}

// group returns a command that only holds subcommands: without one it
// prints its help, and an unknown subcommand is a usage error.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}

// client returns an admin API client for the address and token given by
// flags or the environment. A missing token is a usage error.
func (g *globals) client() (*adminapi.Client, error) {
	addr := g.addr
	if addr == "" {
		addr = os.Getenv(envAddr)
	}
	if addr == "" {
		addr = defaultAddr
	}
	tok := strings.TrimSpace(g.token)
	if tok == "" {
		tok = strings.TrimSpace(os.Getenv(envToken))
	}
	if tok == "" {
		return nil, usagef("no admin token: set %s or pass --token", envToken)
	}
	hc, err := g.httpClient()
	if err != nil {
		return nil, err
	}
	return &adminapi.Client{Addr: addr, Token: tok, HTTP: hc}, nil
}

// runAPI is the body of most admin commands: it calls the admin API once
// with call and prints the result on stdout, as JSON with -o json and
// with text otherwise.
func runAPI[T any](cmd *cobra.Command, g *globals, out *output,
	call func(ctx context.Context, c *adminapi.Client) (T, error),
	text func(w io.Writer, v T) error) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	v, err := call(cmd.Context(), cl)
	if err != nil {
		return err
	}
	if out.json() {
		return writeJSON(cmd.OutOrStdout(), v)
	}
	return text(cmd.OutOrStdout(), v)
}

// runAPIList is runAPI for a listing: JSON shows an empty listing as [].
func runAPIList[E any](cmd *cobra.Command, g *globals, out *output,
	call func(ctx context.Context, c *adminapi.Client) ([]E, error),
	text func(w io.Writer, s []E) error) error {
	return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]E, error) {
		s, err := call(ctx, c)
		return nonNil(s), err
	}, text)
}

// httpClient trusts --ca-cert (or $LATCHKEY_CACERT) besides the system
// roots; nil means the client's default.
func (g *globals) httpClient() (*http.Client, error) {
	path := g.caCert
	if path == "" {
		path = os.Getenv(envCA)
	}
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("--ca-cert: %v", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("--ca-cert %s: no PEM certificate in it", path)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}, nil
}

// checkDuration refuses a malformed duration flag value before any
// request. An empty value is left to the server (a missing --ttl is its
// refusal to make, with reason ttl_missing).
func checkDuration(flag, s string) error {
	if s == "" {
		return nil
	}
	if _, err := timespec.ParseDuration(s); err != nil {
		return usagef("--%s: %v", flag, err)
	}
	return nil
}

// checkTime refuses a malformed time flag value (RFC 3339 or relative)
// before any request; the server resolves it.
func checkTime(flag, s string) error {
	if s == "" {
		return nil
	}
	if _, err := timespec.ParseTime(s, time.Now()); err != nil {
		return usagef("--%s: %v", flag, err)
	}
	return nil
}

// tokenID returns the token id named by arg. arg is a token id, or a whole
// token text, whose id is then read locally so that the secret is never
// sent. Errors never echo a token text.
func tokenID(arg string) (string, error) {
	if strings.HasPrefix(arg, "lk_") || strings.HasPrefix(arg, "lka_") {
		p, err := token.Parse(arg)
		if err != nil {
			return "", usagef("argument looks like a token but is not a valid one (%v): pass the token id shown by 'latchkey token list'", err)
		}
		return p.ID, nil
	}
	if !token.ValidID(arg) {
		return "", usagef("invalid token id %q: want the 12-character id shown by 'latchkey token list'", trunc(arg))
	}
	return arg, nil
}

// trunc shortens an argument echoed in an error message.
func trunc(s string) string {
	const max = 24
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
