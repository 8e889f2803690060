package notify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"latchkey/internal/access"
	"latchkey/internal/seal"
	"latchkey/internal/store"
)

// MaxURL caps a webhook URL.
const MaxURL = 2048

// secretBytes is the size of a generated signing key.
const secretBytes = 32

// validID matches webhook ids as Add makes them.
var validID = regexp.MustCompile(`\Awh_[0-9a-f]{16}\z`)

// NewWebhook is a request to add a webhook.
type NewWebhook struct {
	URL    string   // http(s); https unless the host is loopback
	Events []string // event types (Events); empty = all
	Format string   // FormatStandard (default) or FormatSlack
}

// Add validates nw, generates a signing secret and stores the webhook
// (its URL and secret sealed), audited through a as action webhook.add before
// anything is stored. It returns the webhook and the secret, which is
// never shown again.
func (n *Notifier) Add(ctx context.Context, a *access.Authority, by access.Actor, nw NewWebhook) (w store.Webhook, secret string, err error) {
	var full *url.URL
	err = a.Audited(ctx, by, "webhook.add", func() (string, error) {
		if w, full, err = n.newWebhook(by, nw); err != nil {
			return "", err
		}
		events := "all"
		if len(w.Events) > 0 {
			events = strings.Join(w.Events, " ")
		}
		// The host only: a URL's path may itself be a credential (Slack's
		// incoming webhooks).
		return fmt.Sprintf("%s to host %s, events %s, format %s", w.ID, full.Hostname(), events, w.Format), nil
	}, func() error {
		k := make([]byte, secretBytes)
		if _, err := io.ReadFull(n.cfg.Rand, k); err != nil {
			return fmt.Errorf("notify: randomness: %w", err)
		}
		secret = SecretPrefix + base64.StdEncoding.EncodeToString(k)
		sealed, err := n.cfg.Box.Seal([]byte(secret), sealAD(w.ID))
		if err != nil {
			return err
		}
		w.SealedSecret = sealed
		if w.SealedURL, err = n.cfg.Box.Seal([]byte(full.String()), urlAD(w.ID)); err != nil {
			return err
		}
		return n.cfg.Store.CreateWebhook(ctx, w)
	})
	if err != nil {
		return store.Webhook{}, "", err
	}
	return w, secret, nil
}

// sealAD binds a sealed secret to its webhook.
func sealAD(id string) []byte { return []byte("latchkey webhook secret " + id) }

// urlAD binds a sealed URL to its webhook (and tells it from its secret).
func urlAD(id string) []byte { return []byte("latchkey webhook url " + id) }

// urlHost is what a listing shows of u: its scheme and host.
func urlHost(u *url.URL) string { return u.Scheme + "://" + u.Host }

// Fingerprint is the first 8 hex digits of the SHA-256 of a webhook's
// full URL: listings show it to tell apart two webhooks on one host.
func Fingerprint(rawURL string) string {
	h := sha256.Sum256([]byte(rawURL))
	return hex.EncodeToString(h[:4])
}

// Masked is what listings show of w's URL: its scheme and host, then
// "/…" for whatever path and query it has ("https://hooks.slack.com/…"),
// and its Fingerprint.
func Masked(w store.Webhook) (masked, fingerprint string) {
	return w.URLHost + "/…", w.URLFingerprint
}

// openURL opens the sealed URL of w.
func openURL(box *seal.Box, w store.Webhook) (string, error) {
	u, err := box.Open(w.SealedURL, urlAD(w.ID))
	if err != nil {
		return "", fmt.Errorf("notify: webhook %s: cannot open its URL: %w", w.ID, err)
	}
	return string(u), nil
}

// URL returns the full URL of w, for the reply to adding it, the one time
// it is shown.
func (n *Notifier) URL(w store.Webhook) (string, error) { return openURL(n.cfg.Box, w) }

// newWebhook validates nw without writing and returns the webhook to
// store (without its sealed URL and secret) and its URL, for Add to seal.
func (n *Notifier) newWebhook(by access.Actor, nw NewWebhook) (store.Webhook, *url.URL, error) {
	u, err := CheckURL(nw.URL)
	if err != nil {
		return store.Webhook{}, nil, access.Refuse(access.ReasonInvalid, err.Error())
	}
	events, err := checkEvents(nw.Events)
	if err != nil {
		return store.Webhook{}, nil, access.Refuse(access.ReasonInvalid, err.Error())
	}
	format := nw.Format
	switch format {
	case "":
		format = FormatStandard
	case FormatStandard, FormatSlack:
	default:
		return store.Webhook{}, nil, access.Refuse(access.ReasonInvalid, fmt.Sprintf("invalid format %q: want standard or slack", trunc(format)))
	}
	id, err := n.newID("wh_", 8)
	if err != nil {
		return store.Webhook{}, nil, err
	}
	now := n.cfg.Now().UTC()
	return store.Webhook{ID: id, URLHost: urlHost(u), URLFingerprint: Fingerprint(u.String()),
		Events: events, Format: format, CreatedAt: now, CreatedBy: by.TokenID}, u, nil
}

// CheckURL parses a webhook URL strictly: absolute http or https, a host,
// no user information (credentials belong in the signature) and no
// fragment, at most 2 KiB; plain http only to a loopback host
// (localhost, 127.0.0.0/8, ::1), since a delivery names contractors.
func CheckURL(raw string) (*url.URL, error) {
	if raw == "" || len(raw) > MaxURL {
		return nil, fmt.Errorf("invalid webhook URL: want 1 to %d bytes", MaxURL)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return nil, errors.New("invalid webhook URL: spaces, control and non-ASCII characters must be percent-encoded")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("invalid webhook URL: cannot parse it")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("invalid webhook URL %q: want an http or https URL", shown(u))
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("invalid webhook URL %q: it has no host", shown(u))
	case u.User != nil:
		return nil, errors.New("invalid webhook URL: it must not hold user information (user:password@)")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("invalid webhook URL %q: it must not have a fragment", shown(u))
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strings.TrimLeft(p, "0123456789") != "" {
			return nil, fmt.Errorf("invalid webhook URL %q: bad port", shown(u))
		}
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("invalid webhook URL %q: https is required unless the host is loopback", shown(u))
	}
	return u, nil
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.IsLoopback()
}

// checkEvents validates an event filter: known types, no repeats. nil or
// the single "*" means all.
func checkEvents(in []string) ([]string, error) {
	if len(in) == 1 && in[0] == "*" {
		return nil, nil
	}
	var out []string
	for _, e := range in {
		if !slices.Contains(Events, e) {
			return nil, fmt.Errorf("unknown event %q: want one of %s", trunc(e), strings.Join(Events, ", "))
		}
		if slices.Contains(out, e) {
			return nil, fmt.Errorf("event %q given twice", e)
		}
		out = append(out, e)
	}
	return out, nil
}

// Remove deletes a webhook, audited through a as webhook.remove before
// anything changes. Its pending deliveries fail; the log stays.
func (n *Notifier) Remove(ctx context.Context, a *access.Authority, by access.Actor, id string) error {
	return a.Audited(ctx, by, "webhook.remove", func() (string, error) {
		if !validID.MatchString(id) {
			return "", access.Refuse(access.ReasonInvalid, fmt.Sprintf("invalid webhook id %q: want the wh_ id shown by webhook list", trunc(id)))
		}
		if _, err := n.cfg.Store.Webhook(ctx, id); errors.Is(err, store.ErrNotFound) {
			return "", access.Refuse(access.ReasonNotFound, fmt.Sprintf("webhook %s not found", id))
		} else if err != nil {
			return "", err
		}
		return id, nil
	}, func() error {
		err := n.cfg.Store.DeleteWebhook(ctx, id, n.cfg.Now().UTC())
		if errors.Is(err, store.ErrNotFound) {
			return access.Refuse(access.ReasonNotFound, fmt.Sprintf("webhook %s not found", id))
		}
		return err
	})
}

// Webhooks lists the webhooks (their URLs and secrets stay sealed; see Masked).
func (n *Notifier) Webhooks(ctx context.Context) ([]store.Webhook, error) {
	return n.cfg.Store.Webhooks(ctx)
}

// MaxDeliveries caps one listing of deliveries.
const MaxDeliveries = 1000

// Deliveries lists deliveries and their attempts, newest first: at most
// f.Limit (default and at most MaxDeliveries).
func (n *Notifier) Deliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error) {
	switch f.State {
	case "", store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed:
	default:
		return nil, access.Refuse(access.ReasonInvalid, fmt.Sprintf("invalid state %q: want pending, delivered or failed", trunc(f.State)))
	}
	if f.WebhookID != "" && !validID.MatchString(f.WebhookID) {
		return nil, access.Refuse(access.ReasonInvalid, fmt.Sprintf("invalid webhook id %q", trunc(f.WebhookID)))
	}
	if f.Limit <= 0 || f.Limit > MaxDeliveries {
		f.Limit = MaxDeliveries
	}
	return n.cfg.Store.Deliveries(ctx, f)
}

// trunc shortens a value echoed in a message.
// shown is what an error may quote of a webhook URL: its scheme and host,
// never its path or query, which for many services (a Slack incoming
// webhook) are the secret.
func shown(u *url.URL) string {
	s := trunc(u.Scheme + "://" + u.Host)
	if u.Path != "" || u.RawQuery != "" {
		s += "/…"
	}
	return s
}

func trunc(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// Webhook returns one webhook; a refusal (not_found, invalid_request) if
// there is none with that id.
func (n *Notifier) Webhook(ctx context.Context, id string) (store.Webhook, error) {
	if !validID.MatchString(id) {
		return store.Webhook{}, access.Refuse(access.ReasonInvalid, fmt.Sprintf("invalid webhook id %q: want the wh_ id shown by webhook list", trunc(id)))
	}
	w, err := n.cfg.Store.Webhook(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Webhook{}, access.Refuse(access.ReasonNotFound, fmt.Sprintf("webhook %s not found", id))
	}
	return w, err
}
