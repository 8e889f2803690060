package cli

import (
	"github.com/spf13/cobra"
)

func whoamiCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "whoami",
		Short: "Describe the admin token in use: id, scopes, expiry",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		w, err := cl.Whoami(cmd.Context())
		if err != nil {
			return err
		}
		if out.json() {
			return writeJSON(cmd.OutOrStdout(), w)
		}
		return fields(cmd.OutOrStdout(),
			[2]string{"ID", w.ID},
			[2]string{"SCOPES", list(w.Scopes)},
			[2]string{"EXPIRES", when(w.ExpiresAt)},
			[2]string{"NOTE", w.Note},
		)
	}
	return c
}
