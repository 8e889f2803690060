package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"latchkey/internal/store"
)

// RecordUse applies a batch of usage in one transaction: it raises each
// token's LastUsedAt (never lowers it), adds Count to Uses, and raises the
// per-scope last use of the token's contractor. Unknown token ids are
// ignored. A zero At adds Count and changes no time; admin tokens have no
// contractor, so their scopes are not recorded.
func (s *Store) RecordUse(ctx context.Context, uses []store.Use) error {
	if len(uses) == 0 {
		return nil
	}
	toks, byID := mergeUses(uses)
	tokJSON, err := json.Marshal(toks)
	if err != nil {
		return fmt.Errorf("sqlite: record use: %w", err)
	}
	// Two statements for the whole batch, not two per use: in this engine
	// a statement's fixed cost is most of what a one-row update costs, and
	// a gateway's flush of a second's uses of 1,000 tokens took 30 ms of
	// CPU in one burst, enough to show in the gateway's p99 latency.
	return s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `WITH u (tid, n, at) AS (
				SELECT value->>0, value->>1, value->>2 FROM json_each(?1))
			UPDATE tokens SET uses = uses + u.n,
				last_used_at = CASE WHEN u.at IS NOT NULL AND (last_used_at IS NULL OR last_used_at < u.at)
					THEN u.at ELSE last_used_at END
			FROM u WHERE tokens.id = u.tid RETURNING id, contractor`, string(tokJSON))
		if err != nil {
			return fmt.Errorf("sqlite: record use: %w", err)
		}
		latest := map[[2]string]int64{} // (contractor, scope): last use
		for rows.Next() {
			var id, contractor string
			if err := rows.Scan(&id, &contractor); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: record use: %w", err)
			}
			if contractor == "" {
				continue
			}
			for sc, at := range byID[id] {
				k := [2]string{contractor, sc}
				if old, ok := latest[k]; !ok || at > old {
					latest[k] = at
				}
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("sqlite: record use: %w", err)
		}
		if len(latest) == 0 {
			return nil
		}
		scopes := make([][3]any, 0, len(latest))
		for k, at := range latest {
			scopes = append(scopes, [3]any{k[0], k[1], at})
		}
		scopeJSON, err := json.Marshal(scopes)
		if err != nil {
			return fmt.Errorf("sqlite: record use: %w", err)
		}
		// WHERE true: without it, SQLite would read ON CONFLICT as a
		// join's ON.
		if _, err := tx.ExecContext(ctx, `INSERT INTO scope_uses (contractor, scope, last_used_at)
			SELECT value->>0, value->>1, value->>2 FROM json_each(?1) WHERE true
			ON CONFLICT (contractor, scope) DO UPDATE SET last_used_at = excluded.last_used_at
			WHERE excluded.last_used_at > last_used_at`, string(scopeJSON)); err != nil {
			return fmt.Errorf("sqlite: record use: %w", err)
		}
		return nil
	})
}

// mergeUses folds uses of the same token into one: their counts added,
// the latest time (nil if none has one), and per scope the latest time
// of a use with a time. It returns the tokens' [id, count, time] rows and
// the scope times by token id.
func mergeUses(uses []store.Use) ([][3]any, map[string]map[string]int64) {
	type merged struct {
		n     int64
		at    int64 // unix ms, if timed
		timed bool  // some use has a time
	}
	order := make([]string, 0, len(uses))
	m := make(map[string]*merged, len(uses))
	byID := make(map[string]map[string]int64, len(uses))
	for _, u := range uses {
		e := m[u.TokenID]
		if e == nil {
			e = &merged{}
			m[u.TokenID] = e
			order = append(order, u.TokenID)
		}
		e.n += u.Count
		if u.At.IsZero() {
			continue
		}
		at := u.At.UnixMilli()
		if !e.timed || at > e.at {
			e.at, e.timed = at, true
		}
		for _, sc := range u.Scopes {
			if byID[u.TokenID] == nil {
				byID[u.TokenID] = map[string]int64{}
			}
			if old, ok := byID[u.TokenID][sc]; !ok || at > old {
				byID[u.TokenID][sc] = at
			}
		}
	}
	toks := make([][3]any, len(order))
	for i, id := range order {
		e := m[id]
		toks[i] = [3]any{id, e.n, nil}
		if e.timed {
			toks[i][2] = e.at
		}
	}
	return toks, byID
}

// ScopeUses lists the per-scope last use of every contractor whose last
// use is after since, ordered by contractor, scope. A zero since selects
// every recorded use.
func (s *Store) ScopeUses(ctx context.Context, since time.Time) ([]store.ScopeUse, error) {
	after := int64(math.MinInt64)
	if !since.IsZero() {
		after = bound(since)
	}
	const from = ` FROM scope_uses WHERE last_used_at > ?`
	var us []store.ScopeUse
	err := s.readScan(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*)`+from, after).Scan(&n); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT contractor, scope, last_used_at`+from+` ORDER BY contractor, scope`, after)
		if err != nil {
			return err
		}
		in := interner{}
		var who, scope sql.RawBytes // kept from row to row
		us, err = scanInto(rows, make([]store.ScopeUse, 0, n), func(rows *sql.Rows) (store.ScopeUse, error) {
			var last sql.NullInt64
			err := rows.Scan(&who, &scope, &last)
			return store.ScopeUse{Contractor: in.str(who), Scope: in.str(scope), LastUsedAt: timeOf(last)}, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: scope uses: %w", err)
	}
	return us, nil
}

// ConsumeUse counts one use of a token with a use limit in one
// statement, so concurrent callers can never pass the limit.
func (s *Store) ConsumeUse(ctx context.Context, id string, at time.Time) (int64, error) {
	if err := nonZero(at); err != nil {
		return 0, err
	}
	var uses int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE tokens SET uses = uses + 1,
				last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ?2 THEN ?2 ELSE last_used_at END
			WHERE id = ?1 AND max_uses > 0 AND uses < max_uses RETURNING uses`, id, msec(at)).Scan(&uses)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var limit int64
		switch err := tx.QueryRowContext(ctx, `SELECT max_uses FROM tokens WHERE id = ?`, id).Scan(&limit); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("token %q: %w", id, store.ErrNotFound)
		case err != nil:
			return err
		case limit == 0:
			return fmt.Errorf("token %q has no use limit", id)
		}
		return fmt.Errorf("token %q: %w", id, store.ErrExhausted)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: consume use: %w", err)
	}
	return uses, nil
}
