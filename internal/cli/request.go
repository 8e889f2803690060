package cli

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"latchkey/internal/adminapi"
)

func requestCmd(g *globals) *cobra.Command {
	return group("request", "Ask for, approve, deny and fetch just-in-time access",
		requestCreateCmd(g), requestListCmd(g), requestShowCmd(g), requestApproveCmd(g), requestDenyCmd(g), requestFetchCmd(g))
}

// requestID matches a request id as the server hands them out.
var requestID = regexp.MustCompile(`^rq_[a-z2-7]{16}$`)

func checkRequestID(arg string) error {
	if !requestID.MatchString(arg) {
		return usagef("invalid request id %q: want the rq_... id shown by 'latchkey request list'", trunc(arg))
	}
	return nil
}

// requestStates are the values of --state.
var requestStates = []string{"pending", "approved", "denied", "expired", "fetched"}

func requestCreateCmd(g *globals) *cobra.Command {
	var nr adminapi.NewRequest
	c := &cobra.Command{
		Use:   "create --scope S [--scope S ...] --ttl DURATION --reason TEXT",
		Short: "Ask for a token (with a request-only token); prints the request id",
		Long: `Ask for a token with the given scopes and lifetime, for a reason. Run it with
your request-only token (scope latchkey:request) in $LATCHKEY_TOKEN. The
scopes must lie within your grants. Your sponsor or an approver approves or
denies it; once approved, 'latchkey request fetch ID' prints the token, once.
Its lifetime counts from the approval. Prints the request id.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringArrayVar(&nr.Scopes, "scope", nil, "scope asked for, SERVICE:METHODS:PATH (repeatable)")
	c.Flags().StringVar(&nr.TTL, "ttl", "", "lifetime of the token from its approval, e.g. 8h (required)")
	c.Flags().StringVar(&nr.Reason, "reason", "", "why you need it (required)")
	_ = c.MarkFlagRequired("scope")
	_ = c.MarkFlagRequired("ttl")
	_ = c.MarkFlagRequired("reason")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkDuration("ttl", nr.TTL); err != nil {
			return err
		}
		if strings.TrimSpace(nr.Reason) == "" {
			return usagef("--reason is empty: say why you need access")
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.AccessRequest, error) {
			return c.CreateRequest(ctx, nr)
		}, func(w io.Writer, r adminapi.AccessRequest) error {
			if _, err := fmt.Fprintln(w, r.ID); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "requested %s: it needs %d approval(s) before %s\n", r.ID, r.ApprovalsNeeded, when(r.ExpiresAt))
			return nil
		})
	}
	return c
}

func requestListCmd(g *globals) *cobra.Command {
	var state, contractor string
	c := &cobra.Command{
		Use:   "list [--state S] [--contractor C]",
		Short: "List access requests (all with an admin token, your own with a request-only token)",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.Flags().StringVar(&state, "state", "", "only requests in this state: "+strings.Join(requestStates, ", "))
	c.Flags().StringVar(&contractor, "contractor", "", "only this contractor's requests (admin tokens)")
	_ = c.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(requestStates, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if state != "" && !slices.Contains(requestStates, state) {
			return usagef("--state %q: want one of %s", trunc(state), strings.Join(requestStates, ", "))
		}
		return runAPIList(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]adminapi.AccessRequest, error) {
			return c.Requests(ctx, state, contractor)
		}, requestTable)
	}
	return c
}

func requestTable(w io.Writer, rs []adminapi.AccessRequest) error {
	t := newTable(w, "ID", "CONTRACTOR", "STATE", "APPROVALS", "TTL", "EXPIRES", "SCOPES", "REASON")
	for _, r := range rs {
		t.row(r.ID, r.Contractor, r.State, fmt.Sprintf("%d/%d", len(r.Approvals), r.ApprovalsNeeded), r.TTL,
			when(r.ExpiresAt), list(r.Scopes), r.Reason)
	}
	return t.flush()
}

func requestShowCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "show ID",
		Short: "Show one access request",
		Args:  cobra.ExactArgs(1),
	}
	out := addOutput(c, formatTable, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRequestID(args[0]); err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.AccessRequest, error) {
			return c.ShowRequest(ctx, args[0])
		}, showRequest)
	}
	return c
}

func showRequest(w io.Writer, r adminapi.AccessRequest) error {
	var aps []string
	for _, a := range r.Approvals {
		aps = append(aps, a.Approver+" "+when(a.At))
	}
	return fields(w,
		[2]string{"ID", r.ID},
		[2]string{"CONTRACTOR", r.Contractor},
		[2]string{"REQUESTER", r.Requester},
		[2]string{"STATE", r.State},
		[2]string{"SCOPES", list(r.Scopes)},
		[2]string{"TTL", r.TTL},
		[2]string{"REASON", r.Reason},
		[2]string{"CREATED", when(r.CreatedAt)},
		[2]string{"EXPIRES", when(r.ExpiresAt)},
		[2]string{"APPROVALS", fmt.Sprintf("%d of %d", len(r.Approvals), r.ApprovalsNeeded)},
		[2]string{"APPROVED BY", strings.Join(aps, ", ")},
		[2]string{"DECIDED BY", r.DecidedBy},
		[2]string{"DECIDED", whenPtr(r.DecidedAt)},
		[2]string{"DENY REASON", r.DenyReason},
		[2]string{"TOKEN", r.TokenID},
		[2]string{"FETCHED", whenPtr(r.FetchedAt)},
	)
}

func requestApproveCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve an access request (as the note of your admin token names you)",
		Long: `Approve an access request. You are who the note of your admin token names
(token issue --admin --note NAME); you must be the contractor's sponsor or in
an approver group, and never the requester. The token needs scope
admin:requests:write.`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRequestID(args[0]); err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.AccessRequest, error) {
			return c.ApproveRequest(ctx, args[0])
		}, func(w io.Writer, r adminapi.AccessRequest) error {
			_, err := fmt.Fprintf(w, "%s %s (%d of %d approvals)\n", r.ID, r.State, len(r.Approvals), r.ApprovalsNeeded)
			return err
		})
	}
	return c
}

func requestDenyCmd(g *globals) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "deny ID --reason TEXT",
		Short: "Deny an access request; final",
		Args:  cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringVar(&reason, "reason", "", "why it is denied (required)")
	_ = c.MarkFlagRequired("reason")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRequestID(args[0]); err != nil {
			return err
		}
		if strings.TrimSpace(reason) == "" {
			return usagef("--reason is empty: say why the request is denied")
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.AccessRequest, error) {
			return c.DenyRequest(ctx, args[0], reason)
		}, func(w io.Writer, r adminapi.AccessRequest) error {
			_, err := fmt.Fprintf(w, "%s denied\n", r.ID)
			return err
		})
	}
	return c
}

func requestFetchCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "fetch ID",
		Short: "Print the token of your approved request; it is shown only once",
		Long: `Print the token of your approved access request (run it with the
request-only token that made the request; any other token is refused). stdout holds only the token text, so that
T=$(latchkey request fetch ID) works. It can be fetched only once.`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkRequestID(args[0]); err != nil {
			return err
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.IssuedToken, error) {
			return c.FetchRequest(ctx, args[0])
		}, printIssued(cmd, ""))
	}
	return c
}

func approverCmd(g *globals) *cobra.Command {
	return group("approver", "Manage approver groups: who may approve access requests besides the sponsor",
		approverAddCmd(g), approverRemoveCmd(g), approverListCmd(g))
}

func approverAddCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "add GROUP NAME",
		Short: "Let NAME (as an admin token's note names them) approve any access request",
		Args:  cobra.ExactArgs(2),
	}
	out := addOutput(c, formatText, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Approver, error) {
			return c.AddApprover(ctx, args[0], args[1])
		}, func(w io.Writer, a adminapi.Approver) error {
			_, err := fmt.Fprintf(w, "added %s to approver group %s\n", oneLine(a.Name), a.Group)
			return err
		})
	}
	return c
}

func approverRemoveCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "remove GROUP NAME",
		Short: "Remove NAME from an approver group",
		Args:  cobra.ExactArgs(2),
	}
	out := addOutput(c, formatText, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.ApproverRemoved, error) {
			return c.RemoveApprover(ctx, args[0], args[1])
		}, func(w io.Writer, r adminapi.ApproverRemoved) error {
			_, err := fmt.Fprintf(w, "removed %s from approver group %s\n", oneLine(r.Name), oneLine(r.Group))
			return err
		})
	}
	return c
}

func approverListCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "List approver groups and their members",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return runAPIList(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]adminapi.Approver, error) {
			return c.Approvers(ctx)
		}, func(w io.Writer, as []adminapi.Approver) error {
			t := newTable(w, "GROUP", "NAME", "ADDED", "ADDED BY")
			for _, a := range as {
				t.row(a.Group, a.Name, when(a.CreatedAt), a.CreatedBy)
			}
			return t.flush()
		})
	}
	return c
}
