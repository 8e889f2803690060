package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"latchkey/internal/store"
)

// Access requests and approver groups.

const requestColumns = `id, contractor, requester, scopes, ttl_ms, reason, state, created_at, expires_at,
	decided_by, decided_at, deny_reason, token_id, fetched_at`

// CreateRequest stores r. store.ErrConflict if its id exists,
// store.ErrNotFound if the contractor does not exist, store.ErrDisabled if
// it is disabled.
func (s *Store) CreateRequest(ctx context.Context, r store.AccessRequest) error {
	if r.State != store.RequestPending || len(r.Approvals) > 0 {
		return fmt.Errorf("postgres: create request %q: a new request is pending, without approvals", r.ID)
	}
	if r.TTL < time.Millisecond {
		return fmt.Errorf("postgres: create request %q: ttl %v is under a millisecond", r.ID, r.TTL)
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := contractorUsable(ctx, tx, r.Contractor); err != nil {
			return fmt.Errorf("postgres: create request %q: %w", r.ID, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO access_requests (`+requestColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			r.ID, r.Contractor, r.Requester, list(r.Scopes), r.TTL.Milliseconds(), r.Reason, r.State, msec(r.CreatedAt),
			msec(r.ExpiresAt), r.DecidedBy, msec(r.DecidedAt), r.DenyReason, r.TokenID, msec(r.FetchedAt))
		if isUnique(err) {
			return fmt.Errorf("postgres: request %q: %w", r.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("postgres: create request %q: %w", r.ID, err)
		}
		return nil
	})
}

// Request returns the request with that id, approvals included, or
// store.ErrNotFound.
func (s *Store) Request(ctx context.Context, id string) (store.AccessRequest, error) {
	var w where
	w.add(`id = $%d`, id)
	var rs []store.AccessRequest
	err := s.read(ctx, func(tx pgx.Tx) error {
		var err error
		rs, err = queryRequests(ctx, tx, w)
		return err
	})
	if err != nil {
		return store.AccessRequest{}, scrub(fmt.Errorf("postgres: request %q: %w", id, err), s.pw)
	}
	if len(rs) == 0 {
		return store.AccessRequest{}, fmt.Errorf("postgres: request %q: %w", id, store.ErrNotFound)
	}
	return rs[0], nil
}

// Requests returns the requests selected by f ordered by creation time, id.
func (s *Store) Requests(ctx context.Context, f store.RequestFilter) ([]store.AccessRequest, error) {
	var w where
	if f.Contractor != "" {
		w.add(`contractor = $%d`, f.Contractor)
	}
	if f.State != "" {
		w.add(`state = $%d`, f.State)
	}
	var rs []store.AccessRequest
	err := s.read(ctx, func(tx pgx.Tx) error {
		var err error
		rs, err = queryRequests(ctx, tx, w)
		return err
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: requests: %w", err), s.pw)
	}
	return rs, nil
}

// queryRequests reads, inside tx, the requests selected by w with their
// approvals.
func queryRequests(ctx context.Context, tx pgx.Tx, w where) ([]store.AccessRequest, error) {
	rows, err := tx.Query(ctx, `SELECT `+requestColumns+` FROM access_requests`+w.sql()+
		` ORDER BY created_at NULLS FIRST, id`, w.args...)
	rs, err := collect(rows, err, scanRequest)
	if err != nil || len(rs) == 0 {
		return rs, err
	}
	byID := make(map[string]int, len(rs))
	for i, r := range rs {
		byID[r.ID] = i
	}
	rows, err = tx.Query(ctx, `SELECT request_id, approver, token_id, at FROM request_approvals
		WHERE request_id IN (SELECT id FROM access_requests`+w.sql()+`) ORDER BY request_id, at NULLS FIRST, approver`, w.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a store.Approval
		var at pgtype.Timestamptz
		if err := rows.Scan(&id, &a.Approver, &a.TokenID, &at); err != nil {
			return nil, err
		}
		a.At = timeOf(at)
		if i, ok := byID[id]; ok {
			rs[i].Approvals = append(rs[i].Approvals, a)
		}
	}
	return rs, rows.Err()
}

func scanRequest(rows pgx.Rows) (store.AccessRequest, error) {
	var r store.AccessRequest
	var ttl int64
	var created, expires, decided, fetched pgtype.Timestamptz
	err := rows.Scan(&r.ID, &r.Contractor, &r.Requester, &r.Scopes, &ttl, &r.Reason, &r.State, &created, &expires,
		&r.DecidedBy, &decided, &r.DenyReason, &r.TokenID, &fetched)
	if err != nil {
		return store.AccessRequest{}, err
	}
	r.TTL = time.Duration(ttl) * time.Millisecond
	r.CreatedAt, r.ExpiresAt, r.DecidedAt, r.FetchedAt = timeOf(created), timeOf(expires), timeOf(decided), timeOf(fetched)
	if len(r.Scopes) == 0 {
		r.Scopes = nil
	}
	return r, nil
}

// lockRequest reads, inside a write transaction, a request's state and
// expiry, locking its row; store.ErrNotFound if there is none,
// store.ErrRequestState if it is not in state want or at is not before its
// expiry.
func lockRequest(ctx context.Context, tx pgx.Tx, id string, want string, at time.Time) error {
	var state string
	var expires pgtype.Timestamptz
	err := tx.QueryRow(ctx, `SELECT state, expires_at FROM access_requests WHERE id = $1 FOR UPDATE`, id).Scan(&state, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("request %q: %w", id, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("request %q: %w", id, err)
	case state != want:
		return fmt.Errorf("request %q is %s: %w", id, state, store.ErrRequestState)
	case !at.Before(timeOf(expires)):
		return fmt.Errorf("request %q has expired: %w", id, store.ErrRequestState)
	}
	return nil
}

// ApproveRequest adds a's approval to a pending request and approves the
// request once need distinct approvers have approved it.
func (s *Store) ApproveRequest(ctx context.Context, id string, a store.Approval, need int, expires time.Time) (store.AccessRequest, error) {
	if err := nonZero(a.At); err != nil {
		return store.AccessRequest{}, err
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := lockRequest(ctx, tx, id, store.RequestPending, a.At); err != nil {
			return fmt.Errorf("postgres: approve %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO request_approvals (request_id, approver, token_id, at) VALUES ($1, $2, $3, $4)`,
			id, a.Approver, a.TokenID, msec(a.At))
		if isUnique(err) {
			return fmt.Errorf("postgres: approve request %q: %q already approved it: %w", id, a.Approver, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("postgres: approve request %q: %w", id, err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM request_approvals WHERE request_id = $1`, id).Scan(&n); err != nil {
			return fmt.Errorf("postgres: approve request %q: %w", id, err)
		}
		if n < need {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE access_requests SET state = $1, decided_by = $2, decided_at = $3, expires_at = $4 WHERE id = $5`,
			store.RequestApproved, a.Approver, msec(a.At), msec(expires), id)
		if err != nil {
			return fmt.Errorf("postgres: approve request %q: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return store.AccessRequest{}, err
	}
	return s.Request(ctx, id)
}

// DenyRequest makes a pending request denied.
func (s *Store) DenyRequest(ctx context.Context, id string, by, reason string, at time.Time) error {
	if err := nonZero(at); err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := lockRequest(ctx, tx, id, store.RequestPending, at); err != nil {
			return fmt.Errorf("postgres: deny %w", err)
		}
		_, err := tx.Exec(ctx, `UPDATE access_requests SET state = $1, decided_by = $2, decided_at = $3, deny_reason = $4 WHERE id = $5`,
			store.RequestDenied, by, msec(at), reason, id)
		if err != nil {
			return fmt.Errorf("postgres: deny request %q: %w", id, err)
		}
		return nil
	})
}

// FetchRequest makes an approved request fetched and stores its token, in
// one transaction.
func (s *Store) FetchRequest(ctx context.Context, id string, t store.Token, at time.Time) error {
	if err := nonZero(at); err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		if err := lockRequest(ctx, tx, id, store.RequestApproved, at); err != nil {
			return fmt.Errorf("postgres: fetch %w", err)
		}
		if err := insertToken(ctx, tx, t); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE access_requests SET state = $1, token_id = $2, fetched_at = $3 WHERE id = $4`,
			store.RequestFetched, t.ID, msec(at), id)
		if err != nil {
			return fmt.Errorf("postgres: fetch request %q: %w", id, err)
		}
		return nil
	})
}

// AddApprover stores a; store.ErrConflict if the name is already in the group.
func (s *Store) AddApprover(ctx context.Context, a store.Approver) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO approvers (group_name, name, created_at, created_by) VALUES ($1, $2, $3, $4)`,
			a.Group, a.Name, msec(a.CreatedAt), a.CreatedBy)
		if isUnique(err) {
			return fmt.Errorf("postgres: approver %q in group %q: %w", a.Name, a.Group, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("postgres: add approver: %w", err)
		}
		return nil
	})
}

// RemoveApprover removes name from group; store.ErrNotFound if it is not a member.
func (s *Store) RemoveApprover(ctx context.Context, group, name string) error {
	return s.write(ctx, func(tx pgx.Tx) error {
		n, err := affected(tx.Exec(ctx, `DELETE FROM approvers WHERE group_name = $1 AND name = $2`, group, name))
		if err != nil {
			return fmt.Errorf("postgres: remove approver: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("postgres: approver %q in group %q: %w", name, group, store.ErrNotFound)
		}
		return nil
	})
}

// Approvers returns every group membership ordered by group, name.
func (s *Store) Approvers(ctx context.Context) ([]store.Approver, error) {
	rows, err := s.pool.Query(ctx, `SELECT group_name, name, created_at, created_by FROM approvers ORDER BY group_name, name`)
	as, err := collect(rows, err, func(r pgx.Rows) (store.Approver, error) {
		var a store.Approver
		var created pgtype.Timestamptz
		err := r.Scan(&a.Group, &a.Name, &created, &a.CreatedBy)
		a.CreatedAt = timeOf(created)
		return a, err
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: approvers: %w", err), s.pw)
	}
	return as, nil
}
