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
func nextSeqs(ctx context.Context, tx pgx.Tx, n int) (int64, error) {
	var last int64
	err := tx.QueryRow(ctx, `UPDATE invalidation_seq SET last = last + $1 RETURNING last`, n).Scan(&last)
	return last - int64(n) + 1, err
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
