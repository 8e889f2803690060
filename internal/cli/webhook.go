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
	"latchkey/internal/notify"
)

func webhookCmd(g *globals) *cobra.Command {
	return group("webhook", "Add, list and remove signed webhooks; show their delivery log",
		webhookAddCmd(g), webhookListCmd(g), webhookRemoveCmd(g), webhookDeliveriesCmd(g))
}

func webhookAddCmd(g *globals) *cobra.Command {
	var nw adminapi.NewWebhook
	c := &cobra.Command{
		Use:   "add URL [--event TYPE ...] [--format standard|slack]",
		Short: "Add a webhook; prints its signing secret once",
		Long: `Add a webhook: every event it subscribes to (--event, repeatable; default all:
` + strings.Join(notify.Events, ", ") + `)
is POSTed to URL, https unless the host is loopback, signed the Standard
Webhooks way (headers webhook-id, webhook-timestamp, webhook-signature
"v1,<base64 HMAC-SHA256>"). --format slack sends a Slack incoming-webhook
message {"text": ...} instead of the JSON event.

URL "-" reads the URL from stdin, keeping it out of shell history and the
process list: many services' webhook URLs (Slack's) are secrets.

stdout holds only the signing secret (whsec_...), shown this once. The URL
is stored sealed, like the secret: 'webhook list' shows only its scheme and
host and a fingerprint (the first 8 hex digits of its SHA-256).`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringArrayVar(&nw.Events, "event", nil, "event type to send (repeatable; default all)")
	c.Flags().StringVar(&nw.Format, "format", "standard", "payload format: standard or slack")
	_ = c.RegisterFlagCompletionFunc("event", cobra.FixedCompletions(notify.Events, cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{notify.FormatStandard, notify.FormatSlack}, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(cmd *cobra.Command, args []string) error {
		nw.URL = args[0]
		if nw.URL == "-" {
			b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), notify.MaxURL+1))
			if err != nil {
				return &opError{fmt.Errorf("failed to read the URL from stdin: %w", err)}
			}
			nw.URL = strings.TrimSpace(string(b))
		}
		if _, err := notify.CheckURL(nw.URL); err != nil {
			return usagef("%v", err)
		}
		for _, e := range nw.Events {
			if !slices.Contains(notify.Events, e) {
				return usagef("--event %q: want one of %s", trunc(e), strings.Join(notify.Events, ", "))
			}
		}
		if nw.Format != notify.FormatStandard && nw.Format != notify.FormatSlack {
			return usagef("--format %q: want standard or slack", trunc(nw.Format))
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.AddedWebhook, error) {
			return c.AddWebhook(ctx, nw)
		}, func(w io.Writer, a adminapi.AddedWebhook) error {
			fmt.Fprintf(cmd.ErrOrStderr(), "added webhook %s; its signing secret is shown only this once\n", a.ID)
			_, err := fmt.Fprintln(w, a.Secret)
			return err
		})
	}
	return c
}

func webhookListCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "List webhooks (never their secrets; URLs masked to scheme, host and fingerprint)",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return runAPIList(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]adminapi.Webhook, error) {
			return c.Webhooks(ctx)
		}, func(w io.Writer, ws []adminapi.Webhook) error {
			t := newTable(w, "ID", "URL", "EVENTS", "FORMAT", "CREATED")
			for _, h := range ws {
				events := list(h.Events)
				if events == "" {
					events = "all"
				}
				t.row(h.ID, h.URL+" ("+h.URLFingerprint+")", events, h.Format, when(h.CreatedAt))
			}
			return t.flush()
		})
	}
	return c
}

func webhookRemoveCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a webhook; its pending deliveries fail",
		Args:  cobra.ExactArgs(1),
	}
	out := addOutput(c, formatText, formatJSON)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		id := args[0]
		if !strings.HasPrefix(id, "wh_") {
			return usagef("invalid webhook id %q: want the wh_ id shown by 'latchkey webhook list'", trunc(id))
		}
		return runAPI(cmd, g, out, func(ctx context.Context, c *adminapi.Client) (adminapi.Removed, error) {
			return c.RemoveWebhook(ctx, id)
		}, func(w io.Writer, _ adminapi.Removed) error {
			_, err := fmt.Fprintf(w, "removed webhook %s\n", id)
			return err
		})
	}
	return c
}

func webhookDeliveriesCmd(g *globals) *cobra.Command {
	var webhook, state string
	var limit int
	c := &cobra.Command{
		Use:   "deliveries [--webhook ID] [--state pending|delivered|failed] [--limit N]",
		Short: "Show the delivery log, newest first: one row per attempt",
		Args:  cobra.NoArgs,
	}
	out := addOutput(c, formatTable, formatJSON)
	c.Flags().StringVar(&webhook, "webhook", "", "only this webhook's deliveries")
	c.Flags().StringVar(&state, "state", "", "only deliveries in this state: pending, delivered or failed")
	c.Flags().IntVar(&limit, "limit", 100, "at most this many deliveries (1 to 1000)")
	_ = c.RegisterFlagCompletionFunc("state", cobra.FixedCompletions([]string{"pending", "delivered", "failed"}, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if state != "" && state != "pending" && state != "delivered" && state != "failed" {
			return usagef("--state %q: want pending, delivered or failed", trunc(state))
		}
		if limit < 1 || limit > notify.MaxDeliveries {
			return usagef("--limit %d: want 1 to %d", limit, notify.MaxDeliveries)
		}
		return runAPIList(cmd, g, out, func(ctx context.Context, c *adminapi.Client) ([]adminapi.Delivery, error) {
			return c.Deliveries(ctx, webhook, state, limit)
		}, deliveryTable)
	}
	return c
}

// deliveryTable writes one row per attempt, and one for a delivery not
// yet attempted.
func deliveryTable(w io.Writer, ds []adminapi.Delivery) error {
	t := newTable(w, "DELIVERY", "WEBHOOK", "EVENT", "ATTEMPT", "AT", "RESULT", "STATE", "NEXT ATTEMPT")
	for _, d := range ds {
		if len(d.Log) == 0 {
			t.row(d.ID, d.Webhook, d.Event, "", "", "", d.State, whenPtr(d.NextAttemptAt))
		}
		for _, a := range d.Log {
			result := a.Error
			if a.Status != 0 {
				result = strconv.Itoa(a.Status)
			}
			t.row(d.ID, d.Webhook, d.Event, strconv.Itoa(a.Attempt), when(a.At), result, a.State, whenPtr(a.NextAttemptAt))
		}
	}
	return t.flush()
}
