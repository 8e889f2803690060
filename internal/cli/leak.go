package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"latchkey/internal/adminapi"
	"latchkey/internal/token"
)

// maxTokenInput caps what report-leak reads from stdin.
const maxTokenInput = 4096

func tokenReportLeakCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "report-leak TOKEN|-",
		Short: "Revoke a token found in the wild and notify its sponsor",
		Long: `Revoke the token whose text was found in the wild (a repository, a log, a
chat), and every token derived from it, at once, and notify its sponsor.
TOKEN is the token text; - reads it from stdin (keeps it out of shell
history). An expired or already revoked token is reported all the same.
Needs admin:tokens:write.`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		text := args[0]
		if text == "-" {
			b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxTokenInput+1))
			if err != nil {
				return &opError{fmt.Errorf("failed to read the token from stdin: %w", err)}
			}
			if len(b) > maxTokenInput {
				return usagef("stdin holds more than a token (%d bytes or more)", maxTokenInput)
			}
			text = strings.TrimSpace(string(b))
		}
		if _, err := token.Parse(text); err != nil {
			return usagef("that is not a latchkey token (%v): pass the whole token text, or - to read it from stdin", err)
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.LeakOutcome, error) {
			return c.ReportLeak(ctx, text)
		}, printLeak)
	}
	return c
}

func printLeak(w io.Writer, l adminapi.LeakOutcome) error {
	owner := l.Kind + " token " + l.ID
	if l.Contractor != "" {
		owner += " of " + oneLine(l.Contractor)
	}
	var err error
	if l.Revoked {
		_, err = fmt.Fprintf(w, "revoked %s as leaked", owner)
	} else {
		_, err = fmt.Fprintf(w, "%s was already revoked (%s); reported as leaked", owner, oneLine(l.RevokedReason))
	}
	if err != nil {
		return err
	}
	if len(l.Derived) > 0 {
		fmt.Fprintf(w, "; also revoked derived %s", list(l.Derived))
	}
	_, err = fmt.Fprintln(w)
	return err
}

func tokenDeriveCmd(g *globals) *cobra.Command {
	var nd adminapi.NewDerived
	c := &cobra.Command{
		Use:   "derive --scope S ... --ttl DURATION [--cidr C ...] [--uses N] [--note T]",
		Short: "Contractor side: derive a narrower token from your own; prints it once",
		Long: `Derive a child of the contractor token in LATCHKEY_TOKEN that holds no more
than it: each --scope covered by your token's scopes, an expiry no later than
your token's (a longer --ttl is cut to it), sources within your token's
(default: the same), and, if your token has a use limit, --uses taken from
what it has left. Revoking your token revokes every token derived from it.

stdout holds only the new token text; it is shown this once.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatText, formatJSON)
	f := c.Flags()
	f.StringArrayVar(&nd.Scopes, "scope", nil, "scope of the new token, SERVICE:METHODS:PATH (repeatable)")
	f.StringVar(&nd.TTL, "ttl", "", "lifetime of the new token, e.g. 1h (required)")
	f.StringArrayVar(&nd.CIDRs, "cidr", nil, "source network allowed to use the new token (repeatable)")
	f.Int64Var(&nd.Uses, "uses", 0, "maximum number of uses (required if your token has a limit)")
	f.StringVar(&nd.Note, "note", "", "free text kept with the token")
	_ = c.MarkFlagRequired("scope")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkIssue(cmd, adminapi.NewToken{TTL: nd.TTL, Uses: nd.Uses, CIDRs: nd.CIDRs}); err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.IssuedToken, error) {
			return c.Derive(ctx, nd)
		}, func(w io.Writer, it adminapi.IssuedToken) error {
			if _, err := fmt.Fprintln(w, it.Token); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "derived token %s from %s, expires %s; it is shown only this once\n",
				it.ID, it.DerivedFrom, when(it.ExpiresAt))
			return nil
		})
	}
	return c
}
