package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"

	"github.com/spf13/cobra"

	"latchkey/internal/adminapi"
)

func tokenCmd(g *globals) *cobra.Command {
	return group("token", "Issue, list, show, revoke and rotate tokens",
		tokenIssueCmd(g), tokenListCmd(g), tokenShowCmd(g), tokenRevokeCmd(g), tokenRotateCmd(g),
		tokenReportLeakCmd(g), tokenDeriveCmd(g))
}

func tokenIssueCmd(g *globals) *cobra.Command {
	var nt adminapi.NewToken
	c := &cobra.Command{
		Use:   "issue [CONTRACTOR] --scope S ... --ttl DURATION [--cidr C ...] [--uses N] [--bind dpop --jkt T | --bind mtls --x5t T] [--note T] [--admin]",
		Short: "Issue a token; prints it once",
		Long: `Issue a token to CONTRACTOR inside their live grants, or with --admin an admin
token (no CONTRACTOR) whose admin:... scopes your own token covers.

Every token expires: --ttl (e.g. 8h, 30d) is required, at most the server's
maximum, and must end within the engagement and the covering grants.

--bind dpop --jkt T binds the token to the contractor's DPoP key (T is the
thumbprint "latchkey key new" prints): the gateway then accepts it only as
"Authorization: DPoP" with a proof signed by that key, never as a bearer
token. --bind mtls --x5t T binds it to a client certificate (T its SHA-256
thumbprint): it works only over TLS connections presenting that certificate.

With --admin, --note is the holder's identity: the approver name access
requests check (sponsor, approver groups, distinct approvals). It defaults to
your own token's note; naming anyone else needs admin:approvers:write.

stdout holds only the token text, so that T=$(latchkey token issue ...)
works. It is shown this once and stored only as a hash.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case nt.Admin && len(args) > 0:
				return fmt.Errorf("an admin token has no contractor: drop CONTRACTOR or --admin")
			case !nt.Admin && len(args) != 1:
				return fmt.Errorf("token issue takes one CONTRACTOR argument (or --admin for an admin token), got %d", len(args))
			}
			return nil
		},
	}
	out := addOutput(c, formatText, formatJSON)
	f := c.Flags()
	f.StringArrayVar(&nt.Scopes, "scope", nil, "scope of the token, SERVICE:METHODS:PATH (repeatable)")
	f.StringVar(&nt.TTL, "ttl", "", "lifetime of the token, e.g. 8h or 30d (required)")
	f.StringArrayVar(&nt.CIDRs, "cidr", nil, "source network allowed to use the token, e.g. 10.0.0.0/8 (repeatable)")
	f.Int64Var(&nt.Uses, "uses", 0, "maximum number of uses (default unlimited)")
	f.StringVar(&nt.Note, "note", "", "free text kept with the token; with --admin, the holder's name (default: yours; another needs admin:approvers:write)")
	f.StringVar(&nt.Bind, "bind", "", "bind the token to a key the contractor holds: dpop (with --jkt) or mtls (with --x5t)")
	f.StringVar(&nt.JKT, "jkt", "", "with --bind dpop: the RFC 7638 thumbprint of the contractor's DPoP public key")
	f.StringVar(&nt.X5T, "x5t", "", "with --bind mtls: the SHA-256 thumbprint (base64url) of the contractor's client certificate")
	f.BoolVar(&nt.Admin, "admin", false, "issue an admin token (admin:... scopes, no CONTRACTOR)")
	_ = c.RegisterFlagCompletionFunc("bind", cobra.FixedCompletions([]string{"dpop", "mtls"}, cobra.ShellCompDirectiveNoFileComp))
	_ = c.MarkFlagRequired("scope")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			nt.Contractor = args[0]
		}
		if err := checkIssue(cmd, nt); err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.IssuedToken, error) {
			return c.IssueToken(ctx, nt)
		}, printIssued(cmd, ""))
	}
	return c
}

// checkIssue refuses malformed --ttl, --uses and --cidr values before any
// request. A missing --ttl is left to the server to refuse.
func checkIssue(cmd *cobra.Command, nt adminapi.NewToken) error {
	if err := checkDuration("ttl", nt.TTL); err != nil {
		return err
	}
	if cmd.Flags().Changed("uses") && nt.Uses < 1 {
		return usagef("--uses %d: want a positive number of uses", nt.Uses)
	}
	for _, c := range nt.CIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return usagef("--cidr %q: want an address/prefix like 10.0.0.0/8", trunc(c))
		}
	}
	switch {
	case nt.Bind != "" && nt.Bind != "dpop" && nt.Bind != "mtls":
		return usagef("--bind %q: want dpop or mtls", trunc(nt.Bind))
	case nt.Bind == "dpop" && (nt.JKT == "" || nt.X5T != ""):
		return usagef("--bind dpop needs --jkt THUMBPRINT (and no --x5t)")
	case nt.Bind == "mtls" && (nt.X5T == "" || nt.JKT != ""):
		return usagef("--bind mtls needs --x5t THUMBPRINT (and no --jkt)")
	case nt.Bind == "" && (nt.JKT != "" || nt.X5T != ""):
		return usagef("--jkt and --x5t go with --bind dpop or --bind mtls")
	}
	return nil
}

// printIssued returns the text form of a new token: its text alone on w
// (stdout) and a reminder (id, owner, expiry; never the secret) on
// stderr. old is the id of the token it replaces, if any.
func printIssued(cmd *cobra.Command, old string) func(w io.Writer, it adminapi.IssuedToken) error {
	return func(w io.Writer, it adminapi.IssuedToken) error {
		if _, err := fmt.Fprintln(w, it.Token); err != nil {
			return err
		}
		hint := "issued admin token " + it.ID
		if it.Contractor != "" {
			hint = "issued token " + it.ID + " for " + oneLine(it.Contractor)
		}
		if old != "" {
			hint += " replacing " + old
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s, expires %s; it is shown only this once\n", hint, when(it.ExpiresAt))
		return nil
	}
}

func tokenListCmd(g *globals) *cobra.Command {
	var contractor string
	var active bool
	c := &cobra.Command{
		Use:   "list [--contractor C] [--active]",
		Short: "List tokens: ids, contractor, scopes, expiry, last use",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.Flags().StringVar(&contractor, "contractor", "", "only this contractor's tokens")
	c.Flags().BoolVar(&active, "active", false, "only tokens neither revoked nor expired")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return runAPIList(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]adminapi.Token, error) {
			return c.Tokens(ctx, contractor, active)
		}, tokenTable)
	}
	return c
}

// tokenTable writes token records as a table.
func tokenTable(w io.Writer, ts []adminapi.Token) error {
	t := newTable(w, "ID", "KIND", "CONTRACTOR", "STATE", "EXPIRES", "LAST USED", "SCOPES", "DERIVED FROM")
	for _, tk := range ts {
		t.row(tk.ID, tk.Kind, tk.Contractor, tk.State, when(tk.ExpiresAt), whenPtr(tk.LastUsedAt), list(tk.Scopes), tk.DerivedFrom)
	}
	return t.flush()
}

func tokenShowCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "show ID",
		Short: "Show one token record (never its secret)",
		Args:  cobra.ExactArgs(1),
	}
	out := addOutput(c, formatTable, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := tokenID(args[0])
		if err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Token, error) {
			return c.ShowToken(ctx, id)
		}, showToken)
	}
	return c
}

func showToken(w io.Writer, tk adminapi.Token) error {
	uses := strconv.FormatInt(tk.Uses, 10)
	if tk.MaxUses > 0 {
		uses += " of " + strconv.FormatInt(tk.MaxUses, 10)
	}
	return fields(w,
		[2]string{"ID", tk.ID},
		[2]string{"KIND", tk.Kind},
		[2]string{"CONTRACTOR", tk.Contractor},
		[2]string{"STATE", tk.State},
		[2]string{"SCOPES", list(tk.Scopes)},
		[2]string{"EXPIRES", when(tk.ExpiresAt)},
		[2]string{"CIDRS", list(tk.CIDRs)},
		[2]string{"USES", uses},
		[2]string{"NOTE", tk.Note},
		[2]string{"CREATED", when(tk.CreatedAt)},
		[2]string{"CREATED BY", tk.CreatedBy},
		[2]string{"LAST USED", whenPtr(tk.LastUsedAt)},
		[2]string{"REVOKED", whenPtr(tk.RevokedAt)},
		[2]string{"REVOKED BY", tk.RevokedBy},
		[2]string{"PARENT", tk.Parent},
		[2]string{"DERIVED FROM", tk.DerivedFrom},
	)
}

func tokenRevokeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke one token, at once",
		Args:  cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := tokenID(args[0])
		if err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Revoked, error) {
			return c.RevokeToken(ctx, id)
		}, func(w io.Writer, _ adminapi.Revoked) error {
			_, err := fmt.Fprintf(w, "revoked %s\n", id)
			return err
		})
	}
	return c
}

func tokenRotateCmd(g *globals) *cobra.Command {
	var r adminapi.Rotation
	c := &cobra.Command{
		Use:   "rotate ID [--grace DURATION]",
		Short: "Issue a successor with the same scopes; the old token ends after the grace",
		Long: `Issue a successor of token ID with the same scopes, sources, use limit and
lifetime, checked again against today's grants and engagement. The old token
keeps working for --grace (default: it ends at once).

stdout holds only the new token text; it is shown this once.`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringVar(&r.Grace, "grace", "", "how long the old token keeps working, e.g. 1h (default 0: ends at once)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := tokenID(args[0])
		if err != nil {
			return err
		}
		if err := checkDuration("grace", r.Grace); err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.IssuedToken, error) {
			return c.RotateToken(ctx, id, r)
		}, printIssued(cmd, id))
	}
	return c
}
