package server

import (
	"context"
	"log/slog"

	"latchkey/internal/notify"
	"latchkey/internal/seal"
	"latchkey/internal/store"
)

// newWebhooks builds the notifier (the Authority's Events hook, queuing
// deliveries in the store) and the dispatcher that sends them, woken by
// the notifier as soon as something is queued.
func newWebhooks(cfg Config, st store.Store, box *seal.Box) (*notify.Notifier, *notify.Dispatcher, error) {
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
