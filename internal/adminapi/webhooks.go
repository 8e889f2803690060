package adminapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"latchkey/internal/notify"
	"latchkey/internal/store"
)

// Webhook is a configured notification endpoint. Its signing secret and
// full URL (whose path may be a credential) are never returned, but once
// by POST /v1/webhooks.
type Webhook struct {
	ID string `json:"id"`
	// URL is masked: scheme and host, then "/…" ("https://hooks.slack.com/…").
	URL string `json:"url"`
	// URLFingerprint is the first 8 hex digits of the SHA-256 of the full
	// URL, to tell apart two webhooks on one host.
	URLFingerprint string    `json:"url_fingerprint"`
	Events         []string  `json:"events"` // empty: every event
	Format         string    `json:"format"` // standard or slack
	CreatedAt      time.Time `json:"created_at"`
	CreatedBy      string    `json:"created_by"`
}

// NewWebhook is the body of POST /v1/webhooks.
type NewWebhook struct {
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"` // event types; empty or ["*"]: all
	Format string   `json:"format,omitempty"` // standard (default) or slack
}

// AddedWebhook is the reply to POST /v1/webhooks: the webhook and its
// full URL and signing secret ("whsec_..."), shown this once.
type AddedWebhook struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"` // in full
	URLFingerprint string    `json:"url_fingerprint"`
	Events         []string  `json:"events"`
	Format         string    `json:"format"`
	CreatedAt      time.Time `json:"created_at"`
	CreatedBy      string    `json:"created_by"`
	Secret         string    `json:"secret"`
}

// Removed is the reply to DELETE /v1/webhooks/{id}.
type Removed struct {
	ID      string `json:"id"`
	Removed bool   `json:"removed"`
}

// Delivery is one notification queued for one webhook, with the log of
// its attempts, oldest first.
type Delivery struct {
	ID            string            `json:"id"` // the webhook-id header
	Webhook       string            `json:"webhook"`
	Event         string            `json:"event"`
	State         string            `json:"state"` // pending, delivered or failed
	Attempts      int               `json:"attempts"`
	NextAttemptAt *time.Time        `json:"next_attempt_at,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	Log           []DeliveryAttempt `json:"log"`
}

// DeliveryAttempt is one attempt of a delivery.
type DeliveryAttempt struct {
	Attempt       int        `json:"attempt"`
	At            time.Time  `json:"at"`
	Status        int        `json:"status,omitempty"` // HTTP status; absent if none came
	Error         string     `json:"error,omitempty"`
	State         string     `json:"state"` // the delivery's state after it
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}

func (s *Server) webhookRoutes() []route {
	return []route{
		{"POST", "/v1/webhooks", "webhooks", "write", "Add a webhook (its signing secret is returned once)", NewWebhook{}, AddedWebhook{}, nil, 201, s.addWebhook},
		{"GET", "/v1/webhooks", "webhooks", "read", "List webhooks", nil, []Webhook{}, nil, 200, s.listWebhooks},
		{"GET", "/v1/webhooks/{id}", "webhooks", "read", "Show a webhook", nil, Webhook{}, nil, 200, s.getWebhook},
		{"DELETE", "/v1/webhooks/{id}", "webhooks", "write", "Remove a webhook; its pending deliveries fail", nil, Removed{}, nil, 200, s.removeWebhook},
		{"GET", "/v1/webhooks/deliveries", "webhooks", "read", "The delivery log, newest first", nil, []Delivery{}, []string{"webhook", "state", "limit"}, 200, s.listDeliveries},
	}
}

func toWebhook(w store.Webhook) Webhook {
	masked, fp := notify.Masked(w)
	return Webhook{w.ID, masked, fp, nonNil(w.Events), w.Format, w.CreatedAt, w.CreatedBy}
}

func (s *Server) addWebhook(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	var in NewWebhook
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	w, secret, err := s.cfg.Webhooks.Add(ctx, s.cfg.Authority, c.actor(), notify.NewWebhook{URL: in.URL, Events: in.Events, Format: in.Format})
	if err != nil {
		return 0, nil, err
	}
	full, err := s.cfg.Webhooks.URL(w)
	if err != nil {
		return 0, nil, err
	}
	return 201, AddedWebhook{w.ID, full, w.URLFingerprint, nonNil(w.Events), w.Format, w.CreatedAt, w.CreatedBy, secret}, nil
}

func (s *Server) listWebhooks(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	ws, err := s.cfg.Webhooks.Webhooks(ctx)
	out := make([]Webhook, 0, len(ws))
	for _, w := range ws {
		out = append(out, toWebhook(w))
	}
	return 200, out, err
}

func (s *Server) getWebhook(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	w, err := s.cfg.Webhooks.Webhook(ctx, r.PathValue("id"))
	return 200, toWebhook(w), err
}

func (s *Server) removeWebhook(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	return 200, Removed{id, true}, s.cfg.Webhooks.Remove(ctx, s.cfg.Authority, c.actor(), id)
}

func (s *Server) listDeliveries(ctx context.Context, c caller, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	f := store.DeliveryFilter{WebhookID: q.Get("webhook"), State: q.Get("state")}
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n <= 0 || n > notify.MaxDeliveries {
			return 0, nil, invalid("invalid limit %q: want 1 to %d", raw, notify.MaxDeliveries)
		}
		f.Limit = n
	}
	ds, err := s.cfg.Webhooks.Deliveries(ctx, f)
	if err != nil {
		return 0, nil, err
	}
	out := make([]Delivery, 0, len(ds))
	for _, d := range ds {
		o := Delivery{d.ID, d.WebhookID, d.Event, d.State, d.Attempts, optTime(d.NextAt), d.CreatedAt, make([]DeliveryAttempt, 0, len(d.Log))}
		for _, a := range d.Log {
			o.Log = append(o.Log, DeliveryAttempt{a.N, a.At, a.Status, a.Error, a.State, optTime(a.NextAt)})
		}
		out = append(out, o)
	}
	return 200, out, nil
}
