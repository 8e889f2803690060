package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"latchkey/internal/adminapi"
)

func grantCmd(g *globals) *cobra.Command {
	return group("grant", "Allow, list and revoke the scopes contractors may be given",
		grantAddCmd(g), grantListCmd(g), grantRevokeCmd(g))
}

func grantAddCmd(g *globals) *cobra.Command {
	var ng adminapi.NewGrant
	c := &cobra.Command{
		Use:   "add CONTRACTOR --scope S [--scope S ...] [--until TIME]",
		Short: "Allow a contractor scopes; prints the grant id",
		Long: `Allow a contractor scopes (SERVICE:METHODS:PATH, e.g. billing:read:/v1/invoices/**)
until --until (RFC 3339 or relative; default: the end of the engagement).
Tokens can then be issued inside these scopes. Prints the grant id.`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringArrayVar(&ng.Scopes, "scope", nil, "scope to allow, SERVICE:METHODS:PATH (repeatable)")
	c.Flags().StringVar(&ng.Until, "until", "", "end of the grant: RFC 3339 time or relative (30d)")
	_ = c.MarkFlagRequired("scope")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		ng.Contractor = args[0]
		if err := checkTime("until", ng.Until); err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Grant, error) {
			return c.AddGrant(ctx, ng)
		}, func(w io.Writer, gr adminapi.Grant) error {
			_, err := fmt.Fprintln(w, gr.ID)
			return err
		})
	}
	return c
}

func grantListCmd(g *globals) *cobra.Command {
	var contractor string
	var live bool
	c := &cobra.Command{
		Use:   "list [--contractor C] [--live]",
		Short: "List grants",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.Flags().StringVar(&contractor, "contractor", "", "only this contractor's grants")
	c.Flags().BoolVar(&live, "live", false, "only grants neither revoked nor expired")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return runAPIList(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]adminapi.Grant, error) {
			return c.Grants(ctx, contractor, live)
		}, grantTable)
	}
	return c
}

// grantTable writes grants as a table.
func grantTable(w io.Writer, gs []adminapi.Grant) error {
	t := newTable(w, "ID", "CONTRACTOR", "STATE", "EXPIRES", "SCOPES")
	for _, gr := range gs {
		t.row(strconv.FormatInt(gr.ID, 10), gr.Contractor, gr.State, when(gr.ExpiresAt), list(gr.Scopes))
	}
	return t.flush()
}

func grantRevokeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a grant",
		Args:  cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || id <= 0 {
			return usagef("invalid grant id %q: want the number shown by 'latchkey grant list'", trunc(args[0]))
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Revoked, error) {
			return c.RevokeGrant(ctx, id)
		}, func(w io.Writer, _ adminapi.Revoked) error {
			_, err := fmt.Fprintf(w, "revoked grant %d\n", id)
			return err
		})
	}
	return c
}
