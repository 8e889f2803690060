package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"latchkey/internal/store"
)

// ActiveReport lists contractors holding tokens active at t, ordered by
// contractor name. Admin tokens belong to no contractor and are left out.
func (s *Store) ActiveReport(ctx context.Context, t time.Time) ([]store.ActiveRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.name, c.email, c.sponsor, c.until_at, count(*),
			min(t.expires_at), max(t.expires_at), max(t.last_used_at)
		FROM contractors c JOIN tokens t ON t.contractor = c.name
		WHERE t.revoked_at IS NULL AND t.expires_at > $1
		GROUP BY c.name ORDER BY c.name`, bound(t))
	out, err := collect(rows, err, func(r pgx.Rows) (store.ActiveRow, error) {
		var a store.ActiveRow
		var until, next, latest, last pgtype.Timestamptz
		err := r.Scan(&a.Contractor, &a.Email, &a.Sponsor, &until, &a.Tokens, &next, &latest, &last)
		a.Until, a.NextExpiry, a.LatestExpiry, a.LastUsedAt = timeOf(until), timeOf(next), timeOf(latest), timeOf(last)
		return a, err
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: active report: %w", err), s.pw)
	}
	return out, nil
}

// AccessReport lists the scopes of grants live at t and of contractor
// tokens active at t, for one contractor or (contractor == "") for all,
// ordered by contractor, scope, source, id, all compared as bytes. IDs
// compare as strings, so grant "10" comes before grant "9".
func (s *Store) AccessReport(ctx context.Context, contractor string, t time.Time) ([]store.AccessRow, error) {
	filter := ``
	args := []any{bound(t)}
	if contractor != "" {
		filter = ` AND contractor = $2`
		args = append(args, contractor)
	}
	rows, err := s.pool.Query(ctx, `SELECT contractor, scope, source, id, until FROM (
			SELECT contractor, scope, 'grant' AS source, id::text AS id, expires_at AS until
			FROM grants, unnest(scopes) AS scope
			WHERE revoked_at IS NULL AND expires_at > $1`+filter+`
			UNION ALL
			SELECT contractor, scope, 'token', id, expires_at
			FROM tokens, unnest(scopes) AS scope
			WHERE revoked_at IS NULL AND expires_at > $1 AND contractor <> ''`+filter+`
		) AS access
		ORDER BY contractor COLLATE "C", scope COLLATE "C", source COLLATE "C", id COLLATE "C"`, args...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.AccessRow, error) {
		var a store.AccessRow
		var until pgtype.Timestamptz
		err := r.Scan(&a.Contractor, &a.Scope, &a.Source, &a.ID, &until)
		a.Until = timeOf(until)
		return a, err
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: access report: %w", err), s.pw)
	}
	return out, nil
}

// UnusedTokens lists contractor tokens active at t that were neither used
// nor created after cutoff, ordered by contractor, id.
func (s *Store) UnusedTokens(ctx context.Context, cutoff, t time.Time) ([]store.UnusedToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, contractor, scopes, expires_at, created_at, last_used_at, note
		FROM tokens WHERE revoked_at IS NULL AND expires_at > $1 AND contractor <> ''
		AND (created_at IS NULL OR created_at <= $2)
		AND (last_used_at IS NULL OR last_used_at <= $2)
		ORDER BY contractor, id`, bound(t), bound(cutoff))
	out, err := collect(rows, err, func(r pgx.Rows) (store.UnusedToken, error) {
		var u store.UnusedToken
		var exp, created, used pgtype.Timestamptz
		err := r.Scan(&u.ID, &u.Contractor, &u.Scopes, &exp, &created, &used, &u.Note)
		u.ExpiresAt, u.CreatedAt, u.LastUsedAt = timeOf(exp), timeOf(created), timeOf(used)
		if len(u.Scopes) == 0 {
			u.Scopes = nil
		}
		return u, err
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: unused tokens: %w", err), s.pw)
	}
	return out, nil
}
