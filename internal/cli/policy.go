package cli

import (
	"context"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"latchkey/internal/adminapi"
)

func policyCmd(g *globals) *cobra.Command {
	return group("policy", "Show and set the token policy: TTLs, idle timeout, grant length, approval",
		policyShowCmd(g), policySetCmd(g), policyUnsetCmd(g))
}

func policyShowCmd(g *globals) *cobra.Command {
	var service, contractor string
	c := &cobra.Command{
		Use:   "show [--service S] [--contractor C] [--output json]",
		Short: "Show the effective TTL, idle and approval policy, and where each value comes from",
		Long: `Show the policy that applies to a contractor's tokens: the server's values,
narrowed by the policy of the service (--service) and of the contractor
(--contractor). Max TTL, idle timeout and max grant length are the smallest
value any level sets (the max TTL never above serve --max-ttl); the default
TTL is the smallest default set, never above the max TTL; approval is
required if any level requires it. FROM names the level each value comes
from; "-" means no level sets it.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.Flags().StringVar(&service, "service", "", "narrow by this service's policy")
	c.Flags().StringVar(&contractor, "contractor", "", "narrow by this contractor's policy")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.PolicyView, error) {
			return c.Policy(ctx, service, contractor)
		}, policyTable)
	}
	return c
}

// policyTable writes an effective policy as a table.
func policyTable(w io.Writer, p adminapi.PolicyView) error {
	t := newTable(w, "SETTING", "VALUE", "FROM")
	t.row("default-ttl", p.DefaultTTL.Value, p.DefaultTTL.From)
	t.row("max-ttl", p.MaxTTL.Value, p.MaxTTL.From)
	t.row("idle", p.Idle.Value, p.Idle.From)
	t.row("max-grant", p.MaxGrant.Value, p.MaxGrant.From)
	t.row("approval", p.Approval.Value, p.Approval.From)
	return t.flush()
}

// levelFlags adds --service and --contractor, which choose the level a
// command changes.
func levelFlags(c *cobra.Command, u *adminapi.PolicyUpdate) {
	c.Flags().StringVar(&u.Service, "service", "", "change this service's policy (default: the server's)")
	c.Flags().StringVar(&u.Contractor, "contractor", "", "change this contractor's policy (default: the server's)")
	c.MarkFlagsMutuallyExclusive("service", "contractor")
}

func policySetCmd(g *globals) *cobra.Command {
	var u adminapi.PolicyUpdate
	var def, maxTTL, idle, maxGrant, approval string
	c := &cobra.Command{
		Use:   "set [--service S | --contractor C] [--default-ttl D] [--max-ttl D] [--idle D] [--max-grant D] [--approval required|none]",
		Short: "Set values of the server's, a service's or a contractor's token policy",
		Long: `Set values of one level's token policy: the server's, or with --service or
--contractor that of one service or contractor, which can only narrow the
server's. Values not given are left as they are; 'policy unset' clears them.

  --default-ttl  lifetime of a token issued without --ttl
  --max-ttl      longest token lifetime (serve --max-ttl stays the ceiling)
  --idle         a token unused this long is revoked (reason idle)
  --max-grant    longest grant
  --approval     required: tokens are issued only through an approved request`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	levelFlags(c, &u)
	f := c.Flags()
	f.StringVar(&def, "default-ttl", "", "default token lifetime")
	f.StringVar(&maxTTL, "max-ttl", "", "maximum token lifetime")
	f.StringVar(&idle, "idle", "", "idle timeout")
	f.StringVar(&maxGrant, "max-grant", "", "maximum grant length")
	f.StringVar(&approval, "approval", "", "required or none")
	_ = c.RegisterFlagCompletionFunc("approval", cobra.FixedCompletions([]string{"required", "none"}, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		for _, d := range []struct {
			flag string
			v    string
			dst  **string
		}{{"default-ttl", def, &u.DefaultTTL}, {"max-ttl", maxTTL, &u.MaxTTL}, {"idle", idle, &u.Idle}, {"max-grant", maxGrant, &u.MaxGrant}} {
			if !cmd.Flags().Changed(d.flag) {
				continue
			}
			if _, err := parseDuration(d.flag, d.v); err != nil || d.v == "" {
				return usagef("--%s %q: want a positive duration like 8h or 30d", d.flag, trunc(d.v))
			}
			*d.dst = &d.v
		}
		if cmd.Flags().Changed("approval") {
			if approval != "required" && approval != "none" {
				return usagef("--approval %q: want required or none", trunc(approval))
			}
			u.Approval = &approval
		}
		if u.DefaultTTL == nil && u.MaxTTL == nil && u.Idle == nil && u.MaxGrant == nil && u.Approval == nil {
			return usagef("nothing to set: give --default-ttl, --max-ttl, --idle, --max-grant or --approval")
		}
		return setPolicy(cmd, g, out, u)
	}
	return c
}

func policyUnsetCmd(g *globals) *cobra.Command {
	var u adminapi.PolicyUpdate
	names := []string{"default-ttl", "max-ttl", "idle", "max-grant", "approval"}
	set := make([]bool, len(names))
	c := &cobra.Command{
		Use:   "unset [--service S | --contractor C] [--default-ttl] [--max-ttl] [--idle] [--max-grant] [--approval]",
		Short: "Clear values of one level's token policy, which then inherits them",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	levelFlags(c, &u)
	for i, n := range names {
		c.Flags().BoolVar(&set[i], n, false, "clear the "+n)
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		for i, n := range names {
			if set[i] {
				u.Unset = append(u.Unset, strings.ReplaceAll(n, "-", "_")) // the API's field names
			}
		}
		if len(u.Unset) == 0 {
			return usagef("nothing to unset: give --default-ttl, --max-ttl, --idle, --max-grant or --approval")
		}
		return setPolicy(cmd, g, out, u)
	}
	return c
}

// setPolicy sends u and prints the level's policy as stored.
func setPolicy(cmd *cobra.Command, g *globals, out *output, u adminapi.PolicyUpdate) error {
	return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.PolicyLevel, error) {
		return c.SetPolicy(ctx, u)
	}, func(w io.Writer, p adminapi.PolicyLevel) error {
		level := p.Level
		if p.Name != "" {
			level += " " + p.Name
		}
		return fields(w, [2]string{"LEVEL", level}, [2]string{"DEFAULT-TTL", p.DefaultTTL}, [2]string{"MAX-TTL", p.MaxTTL},
			[2]string{"IDLE", p.Idle}, [2]string{"MAX-GRANT", p.MaxGrant}, [2]string{"APPROVAL", p.Approval})
	})
}
