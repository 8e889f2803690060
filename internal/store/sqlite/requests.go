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

// Access requests and approver groups; the schema is in
// migrations/0006_requests.sql.

const requestColumns = `id, contractor, requester, scopes, ttl_ms, reason, state, created_at, expires_at,
	decided_by, decided_at, deny_reason, token_id, fetched_at`

// CreateRequest stores r. store.ErrConflict if its id exists,
// store.ErrNotFound if the contractor does not exist, store.ErrDisabled if
// it is disabled.
func (s *Store) CreateRequest(ctx context.Context, r store.AccessRequest) error {
	if r.State != store.RequestPending || len(r.Approvals) > 0 {
		return fmt.Errorf("sqlite: create request %q: a new request is pending, without approvals", r.ID)
	}
	if r.TTL < time.Millisecond {
		return fmt.Errorf("sqlite: create request %q: ttl %v is under a millisecond", r.ID, r.TTL)
	}
	scopes, err := encodeList(r.Scopes)
	if err != nil {
		return fmt.Errorf("sqlite: create request %q: %w", r.ID, err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := contractorUsable(ctx, tx, r.Contractor); err != nil {
			return fmt.Errorf("sqlite: create request %q: %w", r.ID, err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO access_requests (`+requestColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Contractor, r.Requester, scopes, r.TTL.Milliseconds(), r.Reason, r.State, msec(r.CreatedAt),
			msec(r.ExpiresAt), r.DecidedBy, msec(r.DecidedAt), r.DenyReason, r.TokenID, msec(r.FetchedAt))
		if isUnique(err) {
			return fmt.Errorf("sqlite: request %q: %w", r.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("sqlite: create request %q: %w", r.ID, err)
		}
		return nil
	})
}

// Request returns the request with that id, approvals included, or
// store.ErrNotFound.
func (s *Store) Request(ctx context.Context, id string) (store.AccessRequest, error) {
	var rs []store.AccessRequest
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		rs, err = queryRequests(ctx, tx, `WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return store.AccessRequest{}, fmt.Errorf("sqlite: request %q: %w", id, err)
	}
	if len(rs) == 0 {
		return store.AccessRequest{}, fmt.Errorf("sqlite: request %q: %w", id, store.ErrNotFound)
	}
	return rs[0], nil
}

// Requests returns the requests selected by f ordered by creation time, id.
func (s *Store) Requests(ctx context.Context, f store.RequestFilter) ([]store.AccessRequest, error) {
	var where []string
	var args []any
	if f.Contractor != "" {
		where = append(where, `contractor = ?`)
		args = append(args, f.Contractor)
	}
	if f.State != "" {
		where = append(where, `state = ?`)
		args = append(args, f.State)
	}
	var q string
	if len(where) > 0 {
		q = `WHERE ` + strings.Join(where, ` AND `)
	}
	var rs []store.AccessRequest
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		rs, err = queryRequests(ctx, tx, q, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: requests: %w", err)
	}
	return rs, nil
}

// queryRequests reads, inside tx, the requests selected by where (a WHERE
// clause on access_requests, or "") with their approvals.
func queryRequests(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]store.AccessRequest, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+requestColumns+` FROM access_requests `+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, err
	}
	rs, err := scanAll(rows, scanRequest)
	if err != nil || len(rs) == 0 {
		return rs, err
	}
	byID := make(map[string]int, len(rs))
	for i, r := range rs {
		byID[r.ID] = i
	}
	rows, err = tx.QueryContext(ctx, `SELECT request_id, approver, token_id, at FROM request_approvals
		WHERE request_id IN (SELECT id FROM access_requests `+where+`) ORDER BY request_id, at, approver`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a store.Approval
		var at sql.NullInt64
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

func scanRequest(rows *sql.Rows) (store.AccessRequest, error) {
	var r store.AccessRequest
	var scopes []byte
	var ttl int64
	var created, expires, decided, fetched sql.NullInt64
	err := rows.Scan(&r.ID, &r.Contractor, &r.Requester, &scopes, &ttl, &r.Reason, &r.State, &created, &expires,
		&r.DecidedBy, &decided, &r.DenyReason, &r.TokenID, &fetched)
	if err != nil {
		return store.AccessRequest{}, err
	}
	r.TTL = time.Duration(ttl) * time.Millisecond
	r.CreatedAt, r.ExpiresAt, r.DecidedAt, r.FetchedAt = timeOf(created), timeOf(expires), timeOf(decided), timeOf(fetched)
	if r.Scopes, err = decodeList(scopes); err != nil {
		return store.AccessRequest{}, fmt.Errorf("request %q: %w", r.ID, err)
	}
	return r, nil
}

// lockRequest reads, inside a write transaction, a request's state and
// expiry; store.ErrNotFound if there is none, store.ErrRequestState if it
// is not in state want or at is not before its expiry.
func lockRequest(ctx context.Context, tx *sql.Tx, id string, want string, at time.Time) error {
	var state string
	var expires sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT state, expires_at FROM access_requests WHERE id = ?`, id).Scan(&state, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := lockRequest(ctx, tx, id, store.RequestPending, a.At); err != nil {
			return fmt.Errorf("sqlite: approve %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO request_approvals (request_id, approver, token_id, at) VALUES (?, ?, ?, ?)`,
			id, a.Approver, a.TokenID, msec(a.At))
		if isUnique(err) {
			return fmt.Errorf("sqlite: approve request %q: %q already approved it: %w", id, a.Approver, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("sqlite: approve request %q: %w", id, err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM request_approvals WHERE request_id = ?`, id).Scan(&n); err != nil {
			return fmt.Errorf("sqlite: approve request %q: %w", id, err)
		}
		if n < need {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE access_requests SET state = ?, decided_by = ?, decided_at = ?, expires_at = ? WHERE id = ?`,
			store.RequestApproved, a.Approver, msec(a.At), msec(expires), id)
		if err != nil {
			return fmt.Errorf("sqlite: approve request %q: %w", id, err)
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
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := lockRequest(ctx, tx, id, store.RequestPending, at); err != nil {
			return fmt.Errorf("sqlite: deny %w", err)
		}
		_, err := tx.ExecContext(ctx, `UPDATE access_requests SET state = ?, decided_by = ?, decided_at = ?, deny_reason = ? WHERE id = ?`,
			store.RequestDenied, by, msec(at), reason, id)
		if err != nil {
			return fmt.Errorf("sqlite: deny request %q: %w", id, err)
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
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := lockRequest(ctx, tx, id, store.RequestApproved, at); err != nil {
			return fmt.Errorf("sqlite: fetch %w", err)
		}
		if err := insertToken(ctx, tx, t); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE access_requests SET state = ?, token_id = ?, fetched_at = ? WHERE id = ?`,
			store.RequestFetched, t.ID, msec(at), id)
		if err != nil {
			return fmt.Errorf("sqlite: fetch request %q: %w", id, err)
		}
		return nil
	})
}

// AddApprover stores a; store.ErrConflict if the name is already in the group.
func (s *Store) AddApprover(ctx context.Context, a store.Approver) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO approvers (group_name, name, created_at, created_by) VALUES (?, ?, ?, ?)`,
			a.Group, a.Name, msec(a.CreatedAt), a.CreatedBy)
		if isUnique(err) {
			return fmt.Errorf("sqlite: approver %q in group %q: %w", a.Name, a.Group, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("sqlite: add approver: %w", err)
		}
		return nil
	})
}

// RemoveApprover removes name from group; store.ErrNotFound if it is not a member.
func (s *Store) RemoveApprover(ctx context.Context, group, name string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM approvers WHERE group_name = ? AND name = ?`, group, name)
		if err != nil {
			return fmt.Errorf("sqlite: remove approver: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("sqlite: approver %q in group %q: %w", name, group, store.ErrNotFound)
		}
		return nil
	})
}

// Approvers returns every group membership ordered by group, name.
func (s *Store) Approvers(ctx context.Context) ([]store.Approver, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT group_name, name, created_at, created_by FROM approvers ORDER BY group_name, name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: approvers: %w", err)
	}
	as, err := scanAll(rows, func(rows *sql.Rows) (store.Approver, error) {
		var a store.Approver
		var created sql.NullInt64
		err := rows.Scan(&a.Group, &a.Name, &created, &a.CreatedBy)
		a.CreatedAt = timeOf(created)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: approvers: %w", err)
	}
	return as, nil
}
