package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"latchkey/internal/store"
)

// nextSeqs takes n consecutive invalidation numbers and returns the first.
// The UPDATE locks invalidation_seq's row until tx ends, so writers of the
// feed take their numbers in commit order: a reader that has seen seq n
// never later finds a new entry at or below n.
//
// It also queues a notification on invalidationChannel, which PostgreSQL
// delivers to every listener when (and only if) tx commits: the other
// processes read the feed within milliseconds (WatchInvalidations).
func nextSeqs(ctx context.Context, tx pgx.Tx, n int) (int64, error) {
	var last int64
	err := tx.QueryRow(ctx, `UPDATE invalidation_seq SET last = last + $1 RETURNING last`, n).Scan(&last)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, invalidationChannel, fmt.Sprint(last)); err != nil {
		return 0, err
	}
	return last - int64(n) + 1, nil
}

// invalidationChannel is the LISTEN/NOTIFY channel of the feed.
const invalidationChannel = "latchkey_invalidations"

// WatchInvalidations implements access.FeedWatcher with LISTEN on a
// connection of its own: a value after each notification, and after
// every (re)connection, which may have missed some. A lost connection is
// retried with a backoff up to 5s; the follower's polls cover the gap.
// The channel is closed once ctx is done.
func (s *Store) WatchInvalidations(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	wake := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(ch)
		backoff := 50 * time.Millisecond
		for ctx.Err() == nil {
			if s.listen(ctx, wake) {
				backoff = 50 * time.Millisecond
			}
			select {
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
	return ch
}

// listen LISTENs until ctx is done or the connection fails, calling wake
// for every notification; it reports whether it got as far as listening.
func (s *Store) listen(ctx context.Context, wake func()) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	c, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, `LISTEN `+invalidationChannel); err != nil {
		return false
	}
	wake() // whatever was appended before LISTEN took effect
	for {
		if _, err := c.WaitForNotification(ctx); err != nil {
			return true
		}
		wake()
	}
}

// invalidateTokens appends, inside tx, an invalidation for each token id
// (ids of tokens that do not exist are skipped). The time is the store's
// clock: the feed is pruned by when rows were written, whatever time the
// change itself names.
func invalidateTokens(ctx context.Context, tx pgx.Tx, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT t.id, t.contractor FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n)
		JOIN tokens t ON t.id = u.id ORDER BY u.n`, ids)
	type pair struct{ id, contractor string }
	found, err := collect(rows, err, func(r pgx.Rows) (pair, error) {
		var p pair
		return p, r.Scan(&p.id, &p.contractor)
	})
	if err != nil || len(found) == 0 {
		return err
	}
	first, err := nextSeqs(ctx, tx, len(found))
	if err != nil {
		return fmt.Errorf("invalidate tokens: %w", err)
	}
	now := msec(time.Now())
	for i, p := range found {
		_, err := tx.Exec(ctx, `INSERT INTO invalidations (seq, token_id, contractor, at) VALUES ($1, $2, $3, $4)`,
			first+int64(i), p.id, p.contractor, now)
		if err != nil {
			return fmt.Errorf("invalidate token %q: %w", p.id, err)
		}
	}
	return nil
}

// invalidateContractor appends, inside tx, an invalidation of every token
// of the contractor.
func invalidateContractor(ctx context.Context, tx pgx.Tx, name string) error {
	seq, err := nextSeqs(ctx, tx, 1)
	if err != nil {
		return fmt.Errorf("invalidate contractor %q: %w", name, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO invalidations (seq, token_id, contractor, at) VALUES ($1, '', $2, $3)`,
		seq, name, msec(time.Now()))
	if err != nil {
		return fmt.Errorf("invalidate contractor %q: %w", name, err)
	}
	return nil
}

// Invalidations returns up to limit invalidations after seq after, in
// order.
func (s *Store) Invalidations(ctx context.Context, after int64, limit int) ([]store.Invalidation, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, token_id, contractor, at FROM invalidations
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Invalidation, error) {
		var in store.Invalidation
		var at pgtype.Timestamptz
		err := r.Scan(&in.Seq, &in.TokenID, &in.Contractor, &at)
		in.At = timeOf(at)
		return in, err
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: invalidations: %w", err), s.pw)
	}
	return out, nil
}

// LastInvalidation returns the largest seq ever appended, kept in
// invalidation_seq, pruned rows included.
func (s *Store) LastInvalidation(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT last FROM invalidation_seq`).Scan(&seq); err != nil {
		return 0, scrub(fmt.Errorf("postgres: last invalidation: %w", err), s.pw)
	}
	return seq, nil
}

// PruneInvalidations deletes the invalidations written before before.
func (s *Store) PruneInvalidations(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		n, err = affected(tx.Exec(ctx, `DELETE FROM invalidations WHERE at < $1`, bound(before)))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: prune invalidations: %w", err)
	}
	return int(n), nil
}
