package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"latchkey/internal/store"
)

// This file implements the store methods of token policy and of the
// sweeper: policies, leases, claims, engagement end, rotation ends and
// expiry notices.

// SetPolicy stores p for its level and name, or removes it if p sets nothing.
func (s *Store) SetPolicy(ctx context.Context, p store.Policy) error {
	switch p.Level {
	case store.PolicyServer, store.PolicyService, store.PolicyContractor:
	default:
		return fmt.Errorf("postgres: set policy: unknown level %q", p.Level)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		if p.Empty() {
			_, err := tx.Exec(ctx, `DELETE FROM policies WHERE level = $1 AND name = $2`, p.Level, p.Name)
			return wrapPolicy(p, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO policies
			(level, name, default_ttl_ms, max_ttl_ms, idle_ms, max_grant_ms, approval, updated_at, updated_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (level, name) DO UPDATE SET default_ttl_ms = excluded.default_ttl_ms,
				max_ttl_ms = excluded.max_ttl_ms, idle_ms = excluded.idle_ms, max_grant_ms = excluded.max_grant_ms,
				approval = excluded.approval, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			p.Level, p.Name, dur(p.DefaultTTL), dur(p.MaxTTL), dur(p.Idle), dur(p.MaxGrant), p.Approval,
			msec(p.UpdatedAt), p.UpdatedBy)
		return wrapPolicy(p, err)
	})
}

func wrapPolicy(p store.Policy, err error) error {
	if err != nil {
		return fmt.Errorf("postgres: set policy %s %q: %w", p.Level, p.Name, err)
	}
	return nil
}

// dur is the stored form of a policy duration: milliseconds, NULL if unset.
func dur(d time.Duration) pgtype.Int8 {
	if d <= 0 {
		return pgtype.Int8{}
	}
	return pgtype.Int8{Int64: d.Milliseconds(), Valid: true}
}

func durOf(ms pgtype.Int8) time.Duration {
	if !ms.Valid {
		return 0
	}
	return time.Duration(ms.Int64) * time.Millisecond
}

// Policies returns every stored policy ordered by level, name.
func (s *Store) Policies(ctx context.Context) ([]store.Policy, error) {
	rows, err := s.pool.Query(ctx, `SELECT level, name, default_ttl_ms, max_ttl_ms, idle_ms, max_grant_ms,
		approval, updated_at, updated_by FROM policies ORDER BY level, name`)
	ps, err := collect(rows, err, func(r pgx.Rows) (store.Policy, error) {
		var p store.Policy
		var def, maxTTL, idle, maxGrant pgtype.Int8
		var updated pgtype.Timestamptz
		err := r.Scan(&p.Level, &p.Name, &def, &maxTTL, &idle, &maxGrant, &p.Approval, &updated, &p.UpdatedBy)
		p.DefaultTTL, p.MaxTTL, p.Idle, p.MaxGrant = durOf(def), durOf(maxTTL), durOf(idle), durOf(maxGrant)
		p.UpdatedAt = timeOf(updated)
		return p, err
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: policies: %w", err), s.pw)
	}
	return ps, nil
}

// AcquireLease takes or renews the lease name for holder until until, if
// it is free, expired at now, or held by holder already.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error) {
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		n, err = affected(tx.Exec(ctx, `INSERT INTO leases (name, holder, until_at) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_at = excluded.until_at
			WHERE leases.holder = excluded.holder OR leases.until_at <= $4`,
			name, holder, bound(until), bound(now)))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: acquire lease %q: %w", name, err)
	}
	return n == 1, nil
}

// Claim records holder's claim of key unless a claim newer than
// staleBefore exists.
func (s *Store) Claim(ctx context.Context, key, holder string, now, staleBefore time.Time) (bool, error) {
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		n, err = affected(tx.Exec(ctx, `INSERT INTO sweep_claims (key, holder, claimed_at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, claimed_at = excluded.claimed_at
			WHERE sweep_claims.claimed_at < $4`,
			key, holder, bound(now), bound(staleBefore)))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: claim %q: %w", key, err)
	}
	return n == 1, nil
}

// EndEngagement revokes every live token (reason engagement_ended) and
// grant of the contractor and disables it, unless it is disabled already.
func (s *Store) EndEngagement(ctx context.Context, name, by string, at time.Time) (store.OffboardResult, error) {
	if err := nonZero(at); err != nil {
		return store.OffboardResult{}, err
	}
	var res store.OffboardResult
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := contractorUsable(ctx, tx, name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE contractors SET disabled = true WHERE name = $1`, name); err != nil {
			return err
		}
		tokens, err := revokeTokensOf(ctx, tx, name, by, store.RevokeEngagementEnd, at)
		if err != nil {
			return err
		}
		grants, err := revokeGrantsOf(ctx, tx, name, by, at)
		if err != nil {
			return err
		}
		res = store.OffboardResult{TokensRevoked: tokens, GrantsRevoked: grants}
		return invalidateContractor(ctx, tx, name)
	})
	if err != nil {
		return store.OffboardResult{}, fmt.Errorf("postgres: end engagement of %q: %w", name, err)
	}
	return res, nil
}

// RotatedTokens returns unrevoked tokens with a successor whose expiry is
// at or before at.
func (s *Store) RotatedTokens(ctx context.Context, at time.Time) ([]store.Token, error) {
	ts, err := queryTokens(ctx, s.pool, `SELECT `+tokenColumns+` FROM tokens o
		WHERE o.revoked_at IS NULL AND o.expires_at <= $1
		AND EXISTS (SELECT 1 FROM tokens n WHERE n.parent = o.id AND n.parent <> '')
		ORDER BY o.id`, bound(at))
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: rotated tokens: %w", err), s.pw)
	}
	return ts, nil
}

// ExpiringTokens returns contractor tokens active at now, expiring by
// before, whose notice is unclaimed and that no successor replaces.
func (s *Store) ExpiringTokens(ctx context.Context, now, before time.Time) ([]store.Token, error) {
	ts, err := queryTokens(ctx, s.pool, `SELECT `+tokenColumns+` FROM tokens
		WHERE NOT admin AND revoked_at IS NULL AND expires_at > $1 AND expires_at <= $2
		AND expiry_noticed_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM tokens n WHERE n.parent = tokens.id AND n.parent <> '')
		ORDER BY expires_at, id`, bound(now), bound(before))
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: expiring tokens: %w", err), s.pw)
	}
	return ts, nil
}

// ClaimExpiryNotice marks token id's expiry notice as sent, if it was not.
func (s *Store) ClaimExpiryNotice(ctx context.Context, id string, at time.Time) (bool, error) {
	if err := nonZero(at); err != nil {
		return false, err
	}
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := lockToken(ctx, tx, id); err != nil {
			return err
		}
		var err error
		n, err = affected(tx.Exec(ctx, `UPDATE tokens SET expiry_noticed_at = $1 WHERE id = $2 AND expiry_noticed_at IS NULL`, msec(at), id))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: claim expiry notice: %w", err)
	}
	return n == 1, nil
}
