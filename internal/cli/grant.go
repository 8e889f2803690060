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
	var kg kubeGrant
	c := &cobra.Command{
		Use:   "add CONTRACTOR (--scope S [--scope S ...] | --k8s SERVICE --namespace NS --verbs V,... [--resources R,...]) [--until TIME]",
		Short: "Allow a contractor scopes; prints the grant id",
		Long: `Allow a contractor scopes (SERVICE:METHODS:PATH, e.g. billing:read:/v1/invoices/**)
until --until (RFC 3339 or relative; default: the end of the engagement).
Tokens can then be issued inside these scopes. Prints the grant id.

For a kubernetes service, --k8s SERVICE --namespace NS --verbs V,...
[--resources R,...] writes the scopes in Kubernetes terms. Verbs: get,
list, watch, create, update, patch, delete, deletecollection. Resources are
NAME[.GROUP][/SUBRESOURCE] as kubectl writes them: pods, deployments.apps,
pods/log, pods/exec (default: every resource of every group in NS, no
subresource). Core resources are under /api/v1/namespaces/NS/, a group's
under /apis/GROUP/*/namespaces/NS/ (any version); get, update, patch and
delete act on RESOURCE/* (GET, PUT, PATCH, DELETE), list and watch on
RESOURCE (GET: granting one grants the other), create and deletecollection
on RESOURCE (POST, DELETE). A subresource takes get, create, update and
patch on RESOURCE/*/SUBRESOURCE; create on exec, attach and portforward
allows GET too (kubectl's WebSocket streams). Example:

  latchkey grant add alice --k8s prod --namespace dev --verbs get,list,watch --resources pods,pods/log

Any token with a scope on a kubernetes service may also read its discovery
paths (/api, /api/v1, /apis, /apis/GROUP/VERSION, /version, /openapi/...).`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringArrayVar(&ng.Scopes, "scope", nil, "scope to allow, SERVICE:METHODS:PATH (repeatable)")
	c.Flags().StringVar(&ng.Until, "until", "", "end of the grant: RFC 3339 time or relative (30d)")
	c.Flags().StringVar(&kg.service, "k8s", "", "kubernetes service to grant access to, in Kubernetes terms")
	c.Flags().StringVar(&kg.namespace, "namespace", "", "with --k8s: the namespace")
	c.Flags().StringVar(&kg.verbs, "verbs", "", "with --k8s: comma-separated verbs (get,list,watch,create,update,patch,delete,deletecollection)")
	c.Flags().StringVar(&kg.resources, "resources", "", "with --k8s: comma-separated resources, e.g. pods,deployments.apps,pods/log (default: all, no subresources)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		ng.Contractor = args[0]
		if err := checkTime("until", ng.Until); err != nil {
			return err
		}
		if len(ng.Scopes) == 0 && !kg.set() {
			return usagef("give --scope S or --k8s SERVICE --namespace NS --verbs V,...")
		}
		if kg.set() {
			if _, err := kg.rule(); err != nil {
				return err
			}
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Grant, error) {
			if kg.set() {
				ss, err := kg.scopes(ctx, c)
				if err != nil {
					return adminapi.Grant{}, err
				}
				ng.Scopes = append(ng.Scopes, ss...)
			}
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
