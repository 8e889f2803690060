// Package notify implements latchkey's signed webhooks: a Notifier turns
// the events of package access (token issued, expiring, revoked,
// idle-reaped, leak reported, access requested, approved, denied) into
// deliveries queued durably in the store (an outbox), one per webhook
// whose filter matches, and a Dispatcher POSTs them, signed the Standard
// Webhooks way (see sign.go), retrying with exponential backoff and
// jitter. Several replicas sharing one store may each run a Dispatcher:
// every attempt is leased to one of them in the store.
//
// A payload never carries a token secret; a signing secret and a webhook
// URL (whose path may be a credential) are stored only sealed (package
// seal) and shown once, when their webhook is added. Listings, audit
// records and logs name a URL by its scheme and host (Masked).
package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/seal"
	"latchkey/internal/store"
)

// Events lists the event types a webhook can subscribe to.
var Events = []string{
	access.EventTokenIssued, access.EventTokenExpiring, access.EventTokenRevoked, access.EventTokenIdleReaped,
	access.EventLeakReported, access.EventAccessRequested, access.EventAccessApproved, access.EventAccessDenied,
}

// Formats of a webhook's payloads.
const (
	FormatStandard = "standard" // a Payload, as JSON
	FormatSlack    = "slack"    // a Slack incoming-webhook message: {"text": "..."}
)

// Payload is the body of a standard-format delivery:
//
//	{"type": "token.revoked", "timestamp": "2026-11-30T18:30:00.123Z",
//	 "data": {"token_id": ..., "contractor": ..., "reason": "manual", ...}}
//
// Fields of data that do not apply to the event are omitted.
type Payload struct {
	Type      string    `json:"type"`      // one of Events
	Timestamp time.Time `json:"timestamp"` // when it happened
	Data      Data      `json:"data"`
}

// Data describes what an event is about. It never holds a token secret.
type Data struct {
	TokenID         string     `json:"token_id,omitempty"`
	Contractor      string     `json:"contractor,omitempty"`
	ContractorEmail string     `json:"contractor_email,omitempty"`
	Company         string     `json:"company,omitempty"`
	Sponsor         string     `json:"sponsor,omitempty"` // the employee who answers for the contractor
	Scopes          []string   `json:"scopes,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"` // the token's expiry
	Reason          string     `json:"reason,omitempty"`     // a revocation reason word, or a request's reason
	RequestID       string     `json:"request_id,omitempty"`
	Actor           string     `json:"actor,omitempty"` // token id of who did it; absent for the server itself
}

// Config configures a Notifier.
type Config struct {
	// Store holds the webhooks and the outbox. Required.
	Store store.Store
	// Box seals signing secrets and URLs. Required.
	Box *seal.Box
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the randomness for ids and secrets. Default crypto/rand.Reader.
	Rand io.Reader
	// Enqueued, if set, is called after deliveries are queued (a
	// Dispatcher's Wake), so they go out without waiting for a poll.
	Enqueued func()
	// Log is the application log. Default slog.Default().
	Log *slog.Logger
}

// Notifier queues notifications and manages webhooks. It is safe for
// concurrent use.
type Notifier struct {
	cfg Config
}

// New validates cfg and returns a Notifier.
func New(cfg Config) (*Notifier, error) {
	if cfg.Store == nil || cfg.Box == nil {
		return nil, errors.New("notify: Store and Box are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Notifier{cfg: cfg}, nil
}

// Notify is an access.Config.Events hook: it queues one delivery of ev
// per webhook that wants it, in one store transaction, and returns
// without waiting for the network. The change ev reports is already done,
// so a failure to queue is logged, not returned.
func (n *Notifier) Notify(ctx context.Context, ev access.Event) {
	if err := n.enqueue(ctx, ev); err != nil {
		n.cfg.Log.Error("notify: cannot queue webhook deliveries", "event", ev.Type, "token", ev.TokenID, "err", err)
	}
}

func (n *Notifier) enqueue(ctx context.Context, ev access.Event) error {
	hooks, err := n.cfg.Store.Webhooks(ctx)
	if err != nil {
		return err
	}
	hooks = slices.DeleteFunc(hooks, func(w store.Webhook) bool { return !wants(w, ev.Type) })
	if len(hooks) == 0 {
		return nil
	}
	p := n.payload(ctx, ev)
	now := n.cfg.Now().UTC().Truncate(time.Millisecond)
	ds := make([]store.Delivery, 0, len(hooks))
	for _, w := range hooks {
		body, err := render(w.Format, p)
		if err != nil {
			return err
		}
		id, err := n.newID("msg_", 16)
		if err != nil {
			return err
		}
		ds = append(ds, store.Delivery{ID: id, WebhookID: w.ID, Event: ev.Type, Payload: body, NextAt: now, CreatedAt: now})
	}
	if err := n.cfg.Store.EnqueueDeliveries(ctx, ds); err != nil {
		return err
	}
	if n.cfg.Enqueued != nil {
		n.cfg.Enqueued()
	}
	return nil
}

// wants reports whether webhook w subscribes to event type typ.
func wants(w store.Webhook, typ string) bool {
	return len(w.Events) == 0 || slices.Contains(w.Events, typ)
}

// payload describes ev, with the contractor's details from the store.
func (n *Notifier) payload(ctx context.Context, ev access.Event) Payload {
	d := Data{TokenID: ev.TokenID, Contractor: ev.Contractor, Scopes: ev.Scopes, Reason: ev.Reason,
		RequestID: ev.RequestID, Actor: ev.Actor}
	if !ev.ExpiresAt.IsZero() {
		t := ev.ExpiresAt.UTC()
		d.ExpiresAt = &t
	}
	if ev.Contractor != "" {
		c, err := n.cfg.Store.Contractor(ctx, ev.Contractor)
		if err != nil {
			n.cfg.Log.Warn("notify: contractor details unavailable", "contractor", ev.Contractor, "err", err)
		}
		d.ContractorEmail, d.Company, d.Sponsor = c.Email, c.Company, c.Sponsor
	}
	return Payload{Type: ev.Type, Timestamp: ev.Time.UTC(), Data: d}
}

// render is the request body of p in format.
func render(format string, p Payload) ([]byte, error) {
	var v any = p
	if format == FormatSlack {
		v = struct {
			Text string `json:"text"`
		}{Summary(p)}
	}
	return json.Marshal(v)
}

// Summary is the one line a Slack message says about p, naming the
// contractor, sponsor, token and reason. Slack's control characters
// (&, <, >) are escaped, so no field can mention a channel or forge a link.
func Summary(p Payload) string {
	d := p.Data
	who := "contractor " + orDash(d.Contractor)
	if d.Sponsor != "" {
		who += " (sponsor " + d.Sponsor + ")"
	}
	tok := "token " + orDash(d.TokenID)
	var s string
	switch p.Type {
	case access.EventTokenIssued:
		s = fmt.Sprintf("%s issued to %s, scopes %s, expires %s", tok, who, strings.Join(d.Scopes, " "), when(d.ExpiresAt))
	case access.EventTokenExpiring:
		s = fmt.Sprintf("%s of %s expires soon, at %s", tok, who, when(d.ExpiresAt))
	case access.EventTokenRevoked:
		s = fmt.Sprintf("%s of %s revoked, reason %s", tok, who, orDash(d.Reason))
	case access.EventTokenIdleReaped:
		s = fmt.Sprintf("%s of %s revoked as idle", tok, who)
	case access.EventLeakReported:
		s = fmt.Sprintf("%s of %s reported leaked and revoked", tok, who)
	case access.EventAccessRequested:
		s = fmt.Sprintf("%s requests %s (request %s): %s", who, strings.Join(d.Scopes, " "), orDash(d.RequestID), orDash(d.Reason))
	case access.EventAccessApproved:
		s = fmt.Sprintf("access request %s of %s approved", orDash(d.RequestID), who)
	case access.EventAccessDenied:
		s = fmt.Sprintf("access request %s of %s denied: %s", orDash(d.RequestID), who, orDash(d.Reason))
	default:
		s = fmt.Sprintf("%s about %s, %s", p.Type, who, tok)
	}
	if d.Actor != "" {
		s += ", by " + d.Actor
	}
	return slackEscape("latchkey: " + s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\n", " ", "\r", " ")

// slackEscape escapes the characters Slack reads as markup.
func slackEscape(s string) string { return slackEscaper.Replace(s) }

// newID returns prefix and n random bytes in hex.
func (n *Notifier) newID(prefix string, size int) (string, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(n.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("notify: randomness: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}
