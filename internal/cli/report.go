package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"latchkey/internal/adminapi"
)

func reportCmd(g *globals) *cobra.Command {
	return group("report", "Who holds live tokens, what they can touch, what goes unused",
		reportActiveCmd(g), reportAccessCmd(g), reportUnusedCmd(g))
}

func reportActiveCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "active",
		Short: "Who holds live tokens, and until when",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		rows, err := cl.ActiveReport(cmd.Context())
		if err != nil {
			return err
		}
		if out.json() {
			return writeJSON(cmd.OutOrStdout(), nonNil(rows))
		}
		t := newTable(cmd.OutOrStdout(), "CONTRACTOR", "EMAIL", "SPONSOR", "UNTIL", "TOKENS", "NEXT EXPIRY", "LATEST EXPIRY", "LAST USED")
		for _, r := range rows {
			t.row(r.Contractor, r.Email, r.Sponsor, when(r.Until), strconv.Itoa(r.Tokens),
				when(r.NextExpiry), when(r.LatestExpiry), whenPtr(r.LastUsedAt))
		}
		return t.flush()
	}
	return c
}

func reportAccessCmd(g *globals) *cobra.Command {
	var contractor string
	c := &cobra.Command{
		Use:   "access [--contractor C]",
		Short: "What each contractor can touch, per service and operation",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.Flags().StringVar(&contractor, "contractor", "", "only this contractor")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		rows, err := cl.AccessReport(cmd.Context(), contractor)
		if err != nil {
			return err
		}
		if out.json() {
			return writeJSON(cmd.OutOrStdout(), nonNil(rows))
		}
		t := newTable(cmd.OutOrStdout(), "CONTRACTOR", "SERVICE", "METHODS", "PATH", "VIA", "ID", "UNTIL")
		for _, r := range rows {
			t.row(r.Contractor, r.Service, r.Methods, r.Path, r.Source, r.ID, when(r.Until))
		}
		return t.flush()
	}
	return c
}

func reportUnusedCmd(g *globals) *cobra.Command {
	var idle string
	c := &cobra.Command{
		Use:   "unused --idle DURATION",
		Short: "Live tokens, and granted scopes, unused for that long",
		Long: `List live tokens not used within --idle, and scopes of live grants that no
token of the contractor used within --idle: candidates for revocation.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.Flags().StringVar(&idle, "idle", "", "idle window, e.g. 30d (required)")
	_ = c.MarkFlagRequired("idle")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkDuration("idle", idle); err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		rep, err := cl.UnusedReport(cmd.Context(), idle)
		if err != nil {
			return err
		}
		rep.Tokens, rep.Scopes = nonNil(rep.Tokens), nonNil(rep.Scopes)
		if out.json() {
			return writeJSON(cmd.OutOrStdout(), rep)
		}
		return unusedTables(cmd, rep)
	}
	return c
}

func unusedTables(cmd *cobra.Command, rep adminapi.UnusedReport) error {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Tokens unused for %s:\n", oneLine(rep.Idle))
	if err := tokenTable(w, rep.Tokens); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nGranted scopes unused for %s:\n", oneLine(rep.Idle))
	t := newTable(w, "CONTRACTOR", "GRANT", "SCOPE")
	for _, s := range rep.Scopes {
		t.row(s.Contractor, strconv.FormatInt(s.GrantID, 10), s.Scope)
	}
	return t.flush()
}
