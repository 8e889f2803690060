package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"latchkey/internal/adminapi"
)

func contractorCmd(g *globals) *cobra.Command {
	return group("contractor", "Onboard, list, show and offboard contractors",
		contractorAddCmd(g), contractorListCmd(g), contractorShowCmd(g), contractorOffboardCmd(g))
}

func contractorAddCmd(g *globals) *cobra.Command {
	var nc adminapi.NewContractor
	c := &cobra.Command{
		Use:   "add NAME --email E --sponsor S --until TIME [--company C]",
		Short: "Onboard a contractor",
		Long: `Onboard a contractor. After --until (RFC 3339, or relative such as 90d) nothing
of theirs works. The sponsor is the employee who answers for them.`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	f := c.Flags()
	f.StringVar(&nc.Email, "email", "", "contractor's email address")
	f.StringVar(&nc.Sponsor, "sponsor", "", "employee who answers for the contractor")
	f.StringVar(&nc.Until, "until", "", "end of the engagement: RFC 3339 time or relative (90d)")
	f.StringVar(&nc.Company, "company", "", "contractor's company")
	for _, name := range []string{"email", "sponsor", "until"} {
		_ = c.MarkFlagRequired(name)
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		nc.Name = args[0]
		if err := checkTime("until", nc.Until); err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Contractor, error) {
			return c.AddContractor(ctx, nc)
		}, func(w io.Writer, ct adminapi.Contractor) error {
			_, err := fmt.Fprintf(w, "added contractor %s (engagement ends %s)\n", oneLine(ct.Name), when(ct.Until))
			return err
		})
	}
	return c
}

func contractorListCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "List contractors",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return runAPIList(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]adminapi.Contractor, error) {
			return c.Contractors(ctx)
		}, contractorTable)
	}
	return c
}

// contractorTable writes contractors as a table.
func contractorTable(w io.Writer, cs []adminapi.Contractor) error {
	now := time.Now()
	t := newTable(w, "NAME", "EMAIL", "COMPANY", "SPONSOR", "UNTIL", "STATE")
	for _, ct := range cs {
		t.row(ct.Name, ct.Email, ct.Company, ct.Sponsor, when(ct.Until), contractorState(ct, now))
	}
	return t.flush()
}

func contractorShowCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one contractor",
		Args:  cobra.ExactArgs(1),
	}
	out := addOutput(c, formatTable, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Contractor, error) {
			return c.ShowContractor(ctx, args[0])
		}, func(w io.Writer, ct adminapi.Contractor) error {
			return showContractor(w, ct, time.Now())
		})
	}
	return c
}

func showContractor(w io.Writer, ct adminapi.Contractor, now time.Time) error {
	return fields(w,
		[2]string{"NAME", ct.Name},
		[2]string{"EMAIL", ct.Email},
		[2]string{"COMPANY", ct.Company},
		[2]string{"SPONSOR", ct.Sponsor},
		[2]string{"UNTIL", when(ct.Until)},
		[2]string{"STATE", contractorState(ct, now)},
		[2]string{"CREATED", when(ct.CreatedAt)},
		[2]string{"CREATED BY", ct.CreatedBy},
	)
}

// contractorState is "disabled" (offboarded), "ended" (past the
// engagement) or "active".
func contractorState(ct adminapi.Contractor, now time.Time) string {
	switch {
	case ct.Disabled:
		return "disabled"
	case !now.Before(ct.Until):
		return "ended"
	}
	return "active"
}

func contractorOffboardCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "offboard NAME",
		Short: "Revoke every token and grant of a contractor and disable them, at once",
		Args:  cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Offboarded, error) {
			return c.Offboard(ctx, args[0])
		}, func(w io.Writer, res adminapi.Offboarded) error {
			_, err := fmt.Fprintf(w, "offboarded %s: %s and %s revoked\n",
				oneLine(res.Contractor), plural(res.TokensRevoked, "token"), plural(res.GrantsRevoked, "grant"))
			return err
		})
	}
	return c
}

// plural returns "1 token", "3 tokens".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
