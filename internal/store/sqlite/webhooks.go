package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"latchkey/internal/store"
)

const webhookColumns = `id, sealed_url, url_host, url_fingerprint, secret, events, format, created_at, created_by`

// CreateWebhook stores w; store.ErrConflict if the id exists. It refuses
// a webhook without a sealed URL.
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) error {
	if len(w.SealedURL) == 0 {
		return errors.New("sqlite: create webhook: a sealed URL is required")
	}
	events, err := encodeList(w.Events)
	if err != nil {
		return fmt.Errorf("sqlite: create webhook: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, w.SealedURL, w.URLHost, w.URLFingerprint, w.SealedSecret, events, w.Format, bound(w.CreatedAt), w.CreatedBy)
		if isUnique(err) {
			return fmt.Errorf("sqlite: webhook %q: %w", w.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("sqlite: create webhook: %w", err)
		}
		return nil
	})
}

// Webhook returns the webhook with that id or store.ErrNotFound.
func (s *Store) Webhook(ctx context.Context, id string) (store.Webhook, error) {
	w, err := scanWebhook(s.r.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Webhook{}, fmt.Errorf("sqlite: webhook %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Webhook{}, fmt.Errorf("sqlite: webhook %q: %w", id, err)
	}
	return w, nil
}

// Webhooks returns all webhooks ordered by creation time, id.
func (s *Store) Webhooks(ctx context.Context) ([]store.Webhook, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: webhooks: %w", err)
	}
	ws, err := scanAll(rows, func(r *sql.Rows) (store.Webhook, error) { return scanWebhook(r) })
	if err != nil {
		return nil, fmt.Errorf("sqlite: webhooks: %w", err)
	}
	return ws, nil
}

func scanWebhook(row scanner) (store.Webhook, error) {
	var w store.Webhook
	var events []byte
	var created sql.NullInt64
	if err := row.Scan(&w.ID, &w.SealedURL, &w.URLHost, &w.URLFingerprint, &w.SealedSecret, &events, &w.Format, &created, &w.CreatedBy); err != nil {
		return store.Webhook{}, err
	}
	w.CreatedAt = timeOf(created)
	var err error
	w.Events, err = decodeList(events)
	return w, err
}

// DeleteWebhook removes a webhook and fails its pending deliveries.
func (s *Store) DeleteWebhook(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("sqlite: delete webhook: %w", err)
		}
		if n, err := r.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("sqlite: webhook %q: %w", id, errors.Join(store.ErrNotFound, err))
		}
		_, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = ?, lease_owner = '', lease_until = 0, updated_at = ?
			WHERE webhook_id = ? AND state = ?`, store.DeliveryFailed, bound(at), id, store.DeliveryPending)
		if err != nil {
			return fmt.Errorf("sqlite: delete webhook: %w", err)
		}
		return nil
	})
}

// EnqueueDeliveries stores pending deliveries in one transaction.
func (s *Store) EnqueueDeliveries(ctx context.Context, ds []store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, d := range ds {
			_, err := tx.ExecContext(ctx, `INSERT INTO deliveries
				(id, webhook_id, event, payload, state, attempts, next_at, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)`,
				d.ID, d.WebhookID, d.Event, d.Payload, store.DeliveryPending, bound(d.NextAt), bound(d.CreatedAt), bound(d.CreatedAt))
			if isUnique(err) {
				return fmt.Errorf("sqlite: delivery %q: %w", d.ID, store.ErrConflict)
			}
			if err != nil {
				return fmt.Errorf("sqlite: enqueue delivery: %w", err)
			}
		}
		return nil
	})
}

const deliveryColumns = `id, webhook_id, event, payload, state, attempts, next_at, created_at, updated_at`

// ClaimDeliveries leases the next attempt of up to limit due deliveries
// to owner. The UPDATE is conditional on the row still being pending,
// due and unleased, so that of two claimers only one gets an attempt
// (SQLite runs one writer at a time; an engine with concurrent writers
// needs the same condition, or SELECT ... FOR UPDATE SKIP LOCKED).
func (s *Store) ClaimDeliveries(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]store.Delivery, error) {
	if owner == "" || limit <= 0 {
		return nil, errors.New("sqlite: claim deliveries: owner and a positive limit are required")
	}
	var ds []store.Delivery
	err := s.write(ctx, func(tx *sql.Tx) error {
		const due = `state = 'pending' AND next_at <= ? AND lease_until <= ?`
		rows, err := tx.QueryContext(ctx, `UPDATE deliveries
			SET attempts = attempts + 1, lease_owner = ?, lease_until = ?, updated_at = ?
			WHERE id IN (SELECT id FROM deliveries WHERE `+due+` ORDER BY next_at, id LIMIT ?) AND `+due+`
			RETURNING `+deliveryColumns,
			owner, bound(leaseUntil), bound(now), bound(now), bound(now), limit, bound(now), bound(now))
		if err != nil {
			return err
		}
		ds, err = scanAll(rows, scanDelivery)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim deliveries: %w", err)
	}
	return ds, nil
}

func scanDelivery(row *sql.Rows) (store.Delivery, error) {
	var d store.Delivery
	var next, created, updated sql.NullInt64
	err := row.Scan(&d.ID, &d.WebhookID, &d.Event, &d.Payload, &d.State, &d.Attempts, &next, &created, &updated)
	d.NextAt, d.CreatedAt, d.UpdatedAt = timeOf(next), timeOf(created), timeOf(updated)
	if d.State != store.DeliveryPending {
		d.NextAt = time.Time{} // next_at is 0 once nothing is due
	}
	return d, err
}

// RecordAttempt logs a and moves its delivery to a.State, if owner still
// holds the lease on attempt a.N.
func (s *Store) RecordAttempt(ctx context.Context, owner string, a store.Attempt) error {
	next := bound(a.NextAt)
	if a.State != store.DeliveryPending {
		next = 0
	}
	switch a.State {
	case store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed:
	default:
		return fmt.Errorf("sqlite: record attempt: bad state %q", a.State)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = ?, next_at = ?, lease_owner = '', lease_until = 0, updated_at = ?
			WHERE id = ? AND attempts = ? AND lease_owner = ? AND state = 'pending'`,
			a.State, next, bound(a.At), a.DeliveryID, a.N, owner)
		if err != nil {
			return fmt.Errorf("sqlite: record attempt: %w", err)
		}
		if n, err := r.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("sqlite: attempt %d of delivery %q is not leased to %q: %w", a.N, a.DeliveryID, owner, errors.Join(store.ErrNotFound, err))
		}
		var nextAt any
		if a.State == store.DeliveryPending {
			nextAt = next
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO delivery_attempts (delivery_id, attempt, at, status, error, state, next_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, a.DeliveryID, a.N, bound(a.At), a.Status, a.Error, a.State, nextAt)
		if err != nil {
			return fmt.Errorf("sqlite: record attempt: %w", err)
		}
		return nil
	})
}

// Deliveries returns the deliveries selected by f, newest first, with their logs.
func (s *Store) Deliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, error) {
	var where []string
	var args []any
	if f.WebhookID != "" {
		where = append(where, `webhook_id = ?`)
		args = append(args, f.WebhookID)
	}
	if f.State != "" {
		where = append(where, `state = ?`)
		args = append(args, f.State)
	}
	q := `SELECT ` + deliveryColumns + ` FROM deliveries`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	var ds []store.Delivery
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		if ds, err = scanAll(rows, scanDelivery); err != nil {
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
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	return ds, nil
}

// attempts returns the log of one delivery, oldest first.
func attempts(ctx context.Context, tx *sql.Tx, id string) ([]store.Attempt, error) {
	rows, err := tx.QueryContext(ctx, `SELECT attempt, at, status, error, state, next_at
		FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt`, id)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, func(r *sql.Rows) (store.Attempt, error) {
		a := store.Attempt{DeliveryID: id}
		var at, next sql.NullInt64
		err := r.Scan(&a.N, &at, &a.Status, &a.Error, &a.State, &next)
		a.At, a.NextAt = timeOf(at), timeOf(next)
		return a, err
	})
}
