package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"latchkey/internal/adminapi"
	"latchkey/internal/kube"
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
		return runAPIList(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]adminapi.ActiveRow, error) {
			return c.ActiveReport(ctx)
		}, activeTable)
	}
	return c
}

// activeTable writes the active report as a table.
func activeTable(w io.Writer, rows []adminapi.ActiveRow) error {
	t := newTable(w, "CONTRACTOR", "EMAIL", "SPONSOR", "UNTIL", "TOKENS", "NEXT EXPIRY", "LATEST EXPIRY", "LAST USED")
	for _, r := range rows {
		t.row(r.Contractor, r.Email, r.Sponsor, when(r.Until), strconv.Itoa(r.Tokens),
			when(r.NextExpiry), when(r.LatestExpiry), whenPtr(r.LastUsedAt))
	}
	return t.flush()
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
		return runAPIList(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]adminapi.AccessRow, error) {
			return c.AccessReport(ctx, contractor)
		}, accessTable)
	}
	return c
}

// accessTable writes the access report as a table. Rows of a kubernetes
// service read in Kubernetes terms (verbs; namespace and resource), and
// the rows of one grant or token on the same namespace and resource are
// one line with their verbs merged (list,watch and get: get,list,watch).
func accessTable(w io.Writer, rows []adminapi.AccessRow) error {
	t := newTable(w, "CONTRACTOR", "SERVICE", "METHODS", "PATH", "VIA", "ID", "UNTIL")
	type line struct {
		cells []string
		verbs []string
	}
	var lines []*line
	merged := map[string]*line{}
	for _, r := range rows {
		k := r.Kubernetes
		if k == nil {
			lines = append(lines, &line{cells: []string{r.Contractor, r.Service, r.Methods, r.Path, r.Source, r.ID, when(r.Until)}})
			continue
		}
		path := "namespace " + k.Namespace + " " + k.Resource
		key := strings.Join([]string{r.Contractor, r.Service, path, r.Source, r.ID, when(r.Until)}, "\x00")
		if l := merged[key]; l != nil {
			l.verbs = append(l.verbs, k.Verbs...)
			continue
		}
		l := &line{cells: []string{r.Contractor, r.Service, "", path, r.Source, r.ID, when(r.Until)}, verbs: slices.Clone(k.Verbs)}
		merged[key] = l
		lines = append(lines, l)
	}
	for _, l := range lines {
		if l.verbs != nil {
			l.cells[2] = strings.Join(kube.SortVerbs(l.verbs), ",")
		}
		t.row(l.cells...)
	}
	return t.flush()
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
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.UnusedReport, error) {
			rep, err := c.UnusedReport(ctx, idle)
			rep.Tokens, rep.Scopes = nonNil(rep.Tokens), nonNil(rep.Scopes)
			return rep, err
		}, unusedTables)
	}
	return c
}

// unusedTables writes the unused report as two tables: tokens, then
// granted scopes.
func unusedTables(w io.Writer, rep adminapi.UnusedReport) error {
	fmt.Fprintf(w, "Tokens unused for %s:\n", oneLine(rep.Idle))
	tt := newTable(w, "ID", "CONTRACTOR", "CREATED", "EXPIRES", "LAST USED", "SCOPES")
	for _, tk := range rep.Tokens {
		tt.row(tk.ID, tk.Contractor, when(tk.CreatedAt), when(tk.ExpiresAt), whenPtr(tk.LastUsedAt), list(tk.Scopes))
	}
	if err := tt.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nGranted scopes unused for %s:\n", oneLine(rep.Idle))
	t := newTable(w, "CONTRACTOR", "GRANT", "SCOPE")
	for _, s := range rep.Scopes {
		t.row(s.Contractor, strconv.FormatInt(s.GrantID, 10), s.Scope)
	}
	return t.flush()
}
