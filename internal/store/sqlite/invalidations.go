package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"latchkey/internal/store"
)

// invalidateTokens appends, inside tx, an invalidation for each token id.
// The time is the store's clock: the feed is pruned by when rows were
// written, whatever time the change itself names.
func invalidateTokens(ctx context.Context, tx *sql.Tx, ids ...string) error {
	now := time.Now().UnixMilli()
	for _, id := range ids {
		_, err := tx.ExecContext(ctx, `INSERT INTO invalidations (token_id, contractor, at)
			SELECT id, contractor, ? FROM tokens WHERE id = ?`, now, id)
		if err != nil {
			return fmt.Errorf("invalidate token %q: %w", id, err)
		}
	}
	return nil
}

// invalidateContractor appends, inside tx, an invalidation of every token
// of the contractor.
func invalidateContractor(ctx context.Context, tx *sql.Tx, name string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO invalidations (token_id, contractor, at) VALUES ('', ?, ?)`,
		name, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("invalidate contractor %q: %w", name, err)
	}
	return nil
}

// Invalidations returns up to limit invalidations after seq after, in
// order.
func (s *Store) Invalidations(ctx context.Context, after int64, limit int) ([]store.Invalidation, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, token_id, contractor, at FROM invalidations
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: invalidations: %w", err)
	}
	out, err := scanAll(rows, func(r *sql.Rows) (store.Invalidation, error) {
		var in store.Invalidation
		var at sql.NullInt64
		err := r.Scan(&in.Seq, &in.TokenID, &in.Contractor, &at)
		in.At = timeOf(at)
		return in, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: invalidations: %w", err)
	}
	return out, nil
}

// LastInvalidation returns the largest seq ever appended: AUTOINCREMENT
// keeps it in sqlite_sequence, pruned rows included.
func (s *Store) LastInvalidation(ctx context.Context) (int64, error) {
	var seq int64
	err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'invalidations'`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("sqlite: last invalidation: %w", err)
	}
	return seq, nil
}

// PruneInvalidations deletes the invalidations written before before.
func (s *Store) PruneInvalidations(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM invalidations WHERE at < ?`, bound(before))
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune invalidations: %w", err)
	}
	return int(n), nil
}
