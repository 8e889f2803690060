package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"latchkey/internal/seal"
	"latchkey/internal/store"
)

// Dispatcher defaults.
const (
	DefaultAttempts = 10
	DefaultBackoff  = 5 * time.Second
	DefaultTimeout  = 10 * time.Second
	DefaultPoll     = 2 * time.Second
	DefaultBatch    = 16
)

// backoffSteps are the retry delays in units of DispatcherConfig.Backoff:
// with the default 5 s, 5 s, 30 s, 2 min, 10 min, 30 min, then 1 h for
// every later retry. Each delay gets up to a fifth more, at random, so
// that retries of many deliveries spread out.
var backoffSteps = []time.Duration{1, 6, 24, 120, 360, 720}

// maxResponse is how much of a receiver's answer is read (and dropped).
const maxResponse = 64 << 10

// maxErrorText caps the error text an attempt's log keeps.
const maxErrorText = 200

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	// Store holds the webhooks and the outbox. Required.
	Store store.Store
	// Box opens the signing secrets and URLs. Required.
	Box *seal.Box
	// Attempts is the most attempts per delivery before it fails.
	// Default DefaultAttempts.
	Attempts int
	// Backoff is the delay before the first retry; later ones grow by
	// backoffSteps. Default DefaultBackoff.
	Backoff time.Duration
	// Timeout bounds one attempt (connect, send, answer). Default DefaultTimeout.
	Timeout time.Duration
	// Poll is how often Run looks for due deliveries besides Wake. Default DefaultPoll.
	Poll time.Duration
	// Batch is how many deliveries one claim takes, sent at once. Default DefaultBatch.
	Batch int
	// Transport sends the requests. Default http.DefaultTransport. Redirects
	// are never followed whatever it is: a 3xx answer is a failed attempt.
	Transport http.RoundTripper
	// Owner names this dispatcher in the store's leases. Default: random.
	Owner string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log is the application log. Default slog.Default().
	Log *slog.Logger
}

// Dispatcher sends queued deliveries. Run it in one goroutine; Tick and
// Wake are safe for concurrent use.
type Dispatcher struct {
	cfg    DispatcherConfig
	client *http.Client
	wake   chan struct{}

	mu   sync.Mutex
	next time.Time // the earliest retry this dispatcher scheduled since Run last looked
}

// NewDispatcher validates cfg and returns a Dispatcher.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	if cfg.Store == nil || cfg.Box == nil {
		return nil, errors.New("notify: Store and Box are required")
	}
	if cfg.Attempts < 0 || cfg.Backoff < 0 || cfg.Timeout < 0 || cfg.Poll < 0 || cfg.Batch < 0 {
		return nil, errors.New("notify: negative dispatcher setting")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.Backoff, DefaultBackoff)
	def(&cfg.Timeout, DefaultTimeout)
	def(&cfg.Poll, DefaultPoll)
	if cfg.Attempts == 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.Owner == "" {
		cfg.Owner = "dispatcher-" + strconv.FormatUint(rand.Uint64(), 36)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	client := &http.Client{
		Transport:     cfg.Transport,
		Timeout:       cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Dispatcher{cfg: cfg, client: client, wake: make(chan struct{}, 1)}, nil
}

// Wake makes Run look for due deliveries now. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run sends due deliveries until ctx is done: on every Wake, when a
// retry it scheduled is due, and at least every Poll (for what other
// replicas queued). An attempt in flight when ctx ends is cut and
// recorded as failed (to be retried, by this or another replica).
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTimer(d.cfg.Poll)
	defer t.Stop()
	for {
		if _, err := d.Tick(ctx); err != nil && ctx.Err() == nil {
			d.cfg.Log.Error("webhooks: dispatch failed", "err", err)
		}
		wait := d.cfg.Poll
		d.mu.Lock()
		if !d.next.IsZero() {
			wait = min(wait, max(d.next.Sub(d.cfg.Now()), 0))
			d.next = time.Time{}
		}
		d.mu.Unlock()
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

// Tick claims the deliveries due now, a batch at a time, sends each once
// and records the outcome, until none is due. It returns how many
// attempts it made.
func (d *Dispatcher) Tick(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		now := d.now()
		// The lease outlasts the attempt's timeout, so no one else makes
		// the next attempt while this one may still be in flight.
		ds, err := d.cfg.Store.ClaimDeliveries(ctx, d.cfg.Owner, now, now.Add(2*d.cfg.Timeout+time.Minute), d.cfg.Batch)
		if err != nil {
			return total, err
		}
		var wg sync.WaitGroup
		errs := make([]error, len(ds))
		for i, dl := range ds {
			wg.Go(func() { errs[i] = d.attempt(ctx, dl) })
		}
		wg.Wait()
		total += len(ds)
		if err := errors.Join(errs...); err != nil {
			return total, err
		}
		if len(ds) < d.cfg.Batch {
			break
		}
	}
	return total, nil
}

func (d *Dispatcher) now() time.Time { return d.cfg.Now().UTC().Truncate(time.Millisecond) }

// attempt makes attempt dl.Attempts of delivery dl and records it.
func (d *Dispatcher) attempt(ctx context.Context, dl store.Delivery) error {
	a := store.Attempt{DeliveryID: dl.ID, N: dl.Attempts, At: d.now()}
	final := false
	w, err := d.cfg.Store.Webhook(ctx, dl.WebhookID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.Error, final = "webhook removed", true
	case err != nil:
		a.Error = "store: cannot read the webhook"
		d.cfg.Log.Error("webhooks: cannot read webhook", "webhook", dl.WebhookID, "err", err)
	default:
		a.Status, a.Error, final = d.send(ctx, w, dl, a.At)
	}
	switch {
	case a.Error == "":
		a.State = store.DeliveryDelivered
	case final || a.N >= d.cfg.Attempts:
		a.State = store.DeliveryFailed
	default:
		a.State, a.NextAt = store.DeliveryPending, a.At.Add(d.backoff(a.N))
		d.mu.Lock()
		if d.next.IsZero() || a.NextAt.Before(d.next) {
			d.next = a.NextAt
		}
		d.mu.Unlock()
	}
	if a.Error != "" {
		d.cfg.Log.Warn("webhooks: delivery attempt failed", "delivery", dl.ID, "webhook", dl.WebhookID,
			"event", dl.Event, "attempt", a.N, "status", a.Status, "err", a.Error, "state", a.State)
	}
	// Record even if ctx ended (shutdown): the attempt was made.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := d.cfg.Store.RecordAttempt(rctx, d.cfg.Owner, a); err != nil {
		return fmt.Errorf("webhooks: record attempt %d of %s: %w", a.N, dl.ID, err)
	}
	return nil
}

// backoff is the delay after failed attempt n (from 1), with jitter.
func (d *Dispatcher) backoff(n int) time.Duration {
	step := backoffSteps[min(n, len(backoffSteps))-1]
	base := step * d.cfg.Backoff
	return base + rand.N(base/5+1)
}

// send POSTs dl to w, signed, and returns the HTTP status (0 if none) and
// an error text ("" on a 2xx answer). final says that retrying cannot help.
func (d *Dispatcher) send(ctx context.Context, w store.Webhook, dl store.Delivery, at time.Time) (int, string, bool) {
	secret, err := d.cfg.Box.Open(w.SealedSecret, sealAD(w.ID))
	if err != nil {
		d.cfg.Log.Error("webhooks: cannot open a signing secret", "webhook", w.ID, "err", err)
		return 0, "cannot open the signing secret", true
	}
	sig, err := Sign(string(secret), dl.ID, at, dl.Payload)
	if err != nil {
		return 0, "bad signing secret", true
	}
	target, err := openURL(d.cfg.Box, w)
	if err != nil {
		d.cfg.Log.Error("webhooks: cannot open a webhook URL", "webhook", w.ID, "err", err)
		return 0, "cannot open the webhook URL", true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(dl.Payload))
	if err != nil {
		return 0, "bad webhook URL", true
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "latchkey-webhooks")
	req.Header.Set(HeaderID, dl.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, errorText(err), false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, "HTTP " + strconv.Itoa(resp.StatusCode), false
	}
	return resp.StatusCode, "", false
}

// errorText is a transport error without the URL (whose path may be a
// credential), cut to maxErrorText bytes.
func errorText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
		if ue.Timeout() {
			return "timeout"
		}
	}
	s := err.Error()
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "..."
	}
	return s
}
