package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"latchkey/internal/adminapi"
)

func whoamiCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "whoami",
		Short: "Describe the admin token in use: id, scopes, expiry",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Whoami, error) {
			return c.Whoami(ctx)
		}, showWhoami)
	}
	return c
}

// showWhoami writes the admin token in use as KEY value lines.
func showWhoami(w io.Writer, who adminapi.Whoami) error {
	return fields(w,
		[2]string{"ID", who.ID},
		[2]string{"SCOPES", list(who.Scopes)},
		[2]string{"EXPIRES", when(who.ExpiresAt)},
		[2]string{"NOTE", who.Note},
	)
}
