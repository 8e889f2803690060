package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"latchkey/internal/store"
)

const webhookColumns = `id, sealed_url, url_host, url_fingerprint, secret, events, format, created_at, created_by`

// CreateWebhook stores w; store.ErrConflict if the id exists. It refuses
// a webhook without a sealed URL.
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) error {
	if len(w.SealedURL) == 0 {
		return errors.New("postgres: create webhook: a sealed URL is required")
	}
	secret := w.SealedSecret
	if secret == nil {
		secret = []byte{} // NOT NULL, as SQLite stores an empty blob
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			w.ID, w.SealedURL, w.URLHost, w.URLFingerprint, secret, list(w.Events), w.Format, bound(w.CreatedAt), w.CreatedBy)
		if isUnique(err) {
			return fmt.Errorf("postgres: webhook %q: %w", w.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("postgres: create webhook: %w", err)
		}
		return nil
	})
}

// Webhook returns the webhook with that id or store.ErrNotFound.
func (s *Store) Webhook(ctx context.Context, id string) (store.Webhook, error) {
	w, err := scanWebhook(s.pool.QueryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Webhook{}, fmt.Errorf("postgres: webhook %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Webhook{}, scrub(fmt.Errorf("postgres: webhook %q: %w", id, err), s.pw)
	}
	return w, nil
}

// Webhooks returns all webhooks ordered by creation time, id.
func (s *Store) Webhooks(ctx context.Context) ([]store.Webhook, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY created_at, id`)
	ws, err := collect(rows, err, func(r pgx.Rows) (store.Webhook, error) { return scanWebhook(r) })
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: webhooks: %w", err), s.pw)
	}
	return ws, nil
}

func scanWebhook(row pgx.Row) (store.Webhook, error) {
	var w store.Webhook
	var created pgtype.Timestamptz
	if err := row.Scan(&w.ID, &w.SealedURL, &w.URLHost, &w.URLFingerprint, &w.SealedSecret, &w.Events, &w.Format, &created, &w.CreatedBy); err != nil {
		return store.Webhook{}, err
	}
	w.CreatedAt = timeOf(created)
	if len(w.Events) == 0 {
		w.Events = nil
	}
	return w, nil
}

// DeleteWebhook removes a webhook and fails its pending deliveries.
func (s *Store) DeleteWebhook(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		n, err := affected(tx.Exec(ctx, `DELETE FROM webhooks WHERE id = $1`, id))
		if err != nil {
			return fmt.Errorf("postgres: delete webhook: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("postgres: webhook %q: %w", id, store.ErrNotFound)
		}
		_, err = tx.Exec(ctx, `UPDATE deliveries SET state = $1, next_at = NULL, lease_owner = '', lease_until = NULL, updated_at = $2
			WHERE webhook_id = $3 AND state = $4`, store.DeliveryFailed, bound(at), id, store.DeliveryPending)
		if err != nil {
			return fmt.Errorf("postgres: delete webhook: %w", err)
		}
		return nil
	})
}

// EnqueueDeliveries stores pending deliveries in one transaction.
func (s *Store) EnqueueDeliveries(ctx context.Context, ds []store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		for _, d := range ds {
			_, err := tx.Exec(ctx, `INSERT INTO deliveries
				(id, webhook_id, event, payload, state, attempts, next_at, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7)`,
				d.ID, d.WebhookID, d.Event, nonNil(d.Payload), store.DeliveryPending, bound(d.NextAt), bound(d.CreatedAt))
			if isUnique(err) {
				return fmt.Errorf("postgres: delivery %q: %w", d.ID, store.ErrConflict)
			}
			if err != nil {
				return fmt.Errorf("postgres: enqueue delivery: %w", err)
			}
		}
		return nil
	})
}

// nonNil is b, or an empty slice for nil (stored as an empty bytea, not NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

const deliveryColumns = `id, webhook_id, event, payload, state, attempts, next_at, created_at, updated_at`

// ClaimDeliveries leases the next attempt of up to limit due deliveries
// to owner. The rows are picked FOR UPDATE SKIP LOCKED and the UPDATE is
// conditional on the row still being pending, due and unleased, so that
// of two claimers, in any processes, only one gets an attempt.
func (s *Store) ClaimDeliveries(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]store.Delivery, error) {
	if owner == "" || limit <= 0 {
		return nil, errors.New("postgres: claim deliveries: owner and a positive limit are required")
	}
	var ds []store.Delivery
	err := s.write(ctx, func(tx pgx.Tx) error {
		const due = `state = 'pending' AND next_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)`
		rows, err := tx.Query(ctx, `UPDATE deliveries
			SET attempts = attempts + 1, lease_owner = $1, lease_until = $2, updated_at = $3
			WHERE id IN (SELECT id FROM deliveries WHERE `+due+` ORDER BY next_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
			AND `+due+`
			RETURNING `+deliveryColumns,
			owner, bound(leaseUntil), bound(now), limit)
		ds, err = collect(rows, err, scanDelivery)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim deliveries: %w", err)
	}
	// RETURNING comes in no particular order: oldest due first.
	slices.SortFunc(ds, func(a, b store.Delivery) int {
		return cmp.Or(a.NextAt.Compare(b.NextAt), strings.Compare(a.ID, b.ID))
	})
	return ds, nil
}

func scanDelivery(row pgx.Rows) (store.Delivery, error) {
	var d store.Delivery
	var next, created, updated pgtype.Timestamptz
	err := row.Scan(&d.ID, &d.WebhookID, &d.Event, &d.Payload, &d.State, &d.Attempts, &next, &created, &updated)
	d.NextAt, d.CreatedAt, d.UpdatedAt = timeOf(next), timeOf(created), timeOf(updated)
	if d.State != store.DeliveryPending {
		d.NextAt = time.Time{} // nothing is due once it is not pending
	}
	return d, err
}

// RecordAttempt logs a and moves its delivery to a.State, if owner still
// holds the lease on attempt a.N.
func (s *Store) RecordAttempt(ctx context.Context, owner string, a store.Attempt) error {
	switch a.State {
	case store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed:
	default:
		return fmt.Errorf("postgres: record attempt: bad state %q", a.State)
	}
	var next pgtype.Timestamptz
	if a.State == store.DeliveryPending {
		next = pgtype.Timestamptz{Time: bound(a.NextAt), Valid: true}
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		n, err := affected(tx.Exec(ctx, `UPDATE deliveries SET state = $1, next_at = $2, lease_owner = '', lease_until = NULL, updated_at = $3
			WHERE id = $4 AND attempts = $5 AND lease_owner = $6 AND state = 'pending'`,
			a.State, next, bound(a.At), a.DeliveryID, a.N, owner))
		if err != nil {
			return fmt.Errorf("postgres: record attempt: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("postgres: attempt %d of delivery %q is not leased to %q: %w", a.N, a.DeliveryID, owner, store.ErrNotFound)
		}
		_, err = tx.Exec(ctx, `INSERT INTO delivery_attempts (delivery_id, attempt, at, status, error, state, next_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, a.DeliveryID, a.N, bound(a.At), a.Status, a.Error, a.State, next)
		if err != nil {
			return fmt.Errorf("postgres: record attempt: %w", err)
		}
		return nil
	})
}

// Deliveries returns the deliveries selected by f, newest first, with their logs.
func (s *Store) Deliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error) {
	var w where
	if f.WebhookID != "" {
		w.add(`webhook_id = $%d`, f.WebhookID)
	}
	if f.State != "" {
		w.add(`state = $%d`, f.State)
	}
	q := `SELECT ` + deliveryColumns + ` FROM deliveries` + w.sql() + ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ` + w.next(f.Limit)
	}
	var ds []store.Delivery
	err := s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, w.args...)
		if ds, err = collect(rows, err, scanDelivery); err != nil {
			return err
		}
		for i := range ds {
			if ds[i].Log, err = attempts(ctx, tx, ds[i].ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: deliveries: %w", err), s.pw)
	}
	return ds, nil
}

// attempts returns the log of one delivery, oldest first.
func attempts(ctx context.Context, tx pgx.Tx, id string) ([]store.Attempt, error) {
	rows, err := tx.Query(ctx, `SELECT attempt, at, status, error, state, next_at
		FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`, id)
	return collect(rows, err, func(r pgx.Rows) (store.Attempt, error) {
		a := store.Attempt{DeliveryID: id}
		var at, next pgtype.Timestamptz
		err := r.Scan(&a.N, &at, &a.Status, &a.Error, &a.State, &next)
		a.At, a.NextAt = timeOf(at), timeOf(next)
		return a, err
	})
}
