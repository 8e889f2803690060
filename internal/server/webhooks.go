package server

import (
	"context"
	"fmt"
	"log/slog"

	"latchkey/internal/notify"
	"latchkey/internal/seal"
	"latchkey/internal/store"
)

// newWebhooks builds the notifier (the Authority's Events hook, queuing
// deliveries in the store) and the dispatcher that sends them, woken by
// the notifier as soon as something is queued. It seals the URLs that
// older versions stored in plain text (notify.Reseal).
func newWebhooks(ctx context.Context, cfg Config, st store.Store, box *seal.Box) (*notify.Notifier, *notify.Dispatcher, error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	d, err := notify.NewDispatcher(notify.DispatcherConfig{Store: st, Box: box,
		Attempts: cfg.WebhookAttempts, Backoff: cfg.WebhookBackoff, Log: log})
	if err != nil {
		return nil, nil, err
	}
	n, err := notify.New(notify.Config{Store: st, Box: box, Enqueued: d.Wake, Log: log})
	if err != nil {
		return nil, nil, err
	}
	// Webhook URLs stored in plain text by a version before they were
	// sealed (schema 0010) are sealed now, before anything lists or sends them.
	sealed, err := n.Reseal(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to seal the URLs of webhooks: %w", err)
	}
	if sealed > 0 {
		log.Info("webhooks: sealed URLs stored in plain text by an older version", "webhooks", sealed)
	}
	return n, d, nil
}

// runDispatcher runs the webhook dispatcher until the returned func is
// called; that func returns once the dispatcher has stopped (an attempt in
// flight is cut and recorded, to be retried).
func runDispatcher(d *notify.Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	return func() { cancel(); <-done }
}
