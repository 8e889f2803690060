package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

// QueuedAudit is the audit.SharedQueue of a Store: table audit_queue,
// shared by every process on the database. An acknowledged record is one
// row there (one INSERT per batch of concurrent appends, committed with
// the audit sync's durability).
//
// One process at a time is the sequencer: the one holding the session
// advisory lock sequencerLockKey on a connection of its own (pg_locks
// shows which; its application_name names the process). Only the
// sequencer integrates: it adds the oldest queued rows, of every process,
// to the tree and deletes them, in one transaction that also takes the
// transaction lock auditLockKey and checks the log's size, so that even
// two sequencers at once (a partition that has not yet cost the first its
// lock) append without a gap or a fork. When the sequencer dies, its
// lock goes with its connection, and the next process to try (every
// process tries every --audit-delay) takes over, queued rows and all:
// nothing acknowledged is lost.
type QueuedAudit struct {
	*AuditStorage

	mu      sync.Mutex
	conn    *pgx.Conn // the sequencer lock's own connection, once made
	leader  bool      // conn holds sequencerLockKey
	checked time.Time // when lead last asked the server
	closed  bool
}

var _ audit.SharedQueue = (*QueuedAudit)(nil)

// sequencerLockKey is the key of the session advisory lock the sequencer
// holds ("lk-seqnc" in ASCII).
const sequencerLockKey int64 = 0x6c6b2d7365716e63

// How often lead asks the server: a non-sequencer tries for the lock, the
// sequencer checks that its connection (and so its lock) is still there.
const (
	leadTry   = 50 * time.Millisecond
	leadCheck = time.Second
)

// QueuedAudit returns the queued audit storage of s.
func (s *Store) QueuedAudit(sync Sync) *QueuedAudit {
	return &QueuedAudit{AuditStorage: s.Audit(sync)}
}

// Shared implements audit.SharedQueue.
func (q *QueuedAudit) Shared() {}

// Close gives up the sequencer's lock, if held. The queue itself is in
// the database, which Store.Close closes.
func (q *QueuedAudit) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if q.conn != nil {
		err := q.conn.Close(context.Background())
		q.conn, q.leader = nil, false
		return err
	}
	return nil
}

// lead reports whether this process is the sequencer, trying to become
// it (at most every leadTry) if not. The sequencer checks its lock's
// connection every leadCheck: if it died, so did the lock (another
// process may hold it now; two sequencers for a moment are safe, see
// QueuedAudit).
func (q *QueuedAudit) lead(ctx context.Context) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false, audit.ErrClosed
	}
	now := time.Now()
	if q.leader && now.Sub(q.checked) < leadCheck || !q.leader && now.Sub(q.checked) < leadTry {
		return q.leader, nil
	}
	q.checked = now
	if q.conn != nil && q.leader {
		if err := q.conn.Ping(ctx); err == nil {
			return true, nil
		}
	}
	if q.conn != nil && q.conn.IsClosed() || q.conn != nil && q.leader {
		q.conn.Close(context.Background())
		q.conn, q.leader = nil, false
	}
	if q.conn == nil {
		c, err := pgx.ConnectConfig(ctx, q.s.pool.Config().ConnConfig.Copy())
		if err != nil {
			return false, fmt.Errorf("postgres: audit sequencer: %w", err)
		}
		q.conn = c
	}
	if err := q.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, sequencerLockKey).Scan(&q.leader); err != nil {
		q.conn.Close(context.Background())
		q.conn, q.leader = nil, false
		return false, fmt.Errorf("postgres: audit sequencer: %w", err)
	}
	return q.leader, nil
}

// Mark implements audit.Queue: the newest row queued by any process.
func (q *QueuedAudit) Mark(ctx context.Context) (int64, error) {
	var mark int64
	if err := q.s.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM audit_queue`).Scan(&mark); err != nil {
		return 0, scrub(fmt.Errorf("postgres: audit queue: %w", err), q.s.pw)
	}
	return mark, nil
}

// Enqueue implements audit.Queue; the mark is the last row's id.
func (q *QueuedAudit) Enqueue(ctx context.Context, leaves [][]byte) (int64, error) {
	if len(leaves) == 0 {
		return 0, errors.New("postgres: audit queue: no leaves")
	}
	for _, l := range leaves {
		if len(l) > audit.MaxLeafSize {
			return 0, fmt.Errorf("postgres: audit queue: a leaf of %d bytes, limit %d", len(l), audit.MaxLeafSize)
		}
	}
	var mark int64
	err := pgx.BeginTxFunc(ctx, q.s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if q.sync == SyncFull {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
				return err
			}
		}
		// Ids in the order of leaves: one statement, ordinality kept.
		return tx.QueryRow(ctx, `WITH ins AS (
				INSERT INTO audit_queue (leaf) SELECT leaf FROM unnest($1::bytea[]) WITH ORDINALITY AS u(leaf, n) ORDER BY n
				RETURNING id)
			SELECT max(id) FROM ins`, leaves).Scan(&mark)
	})
	if err != nil {
		return 0, scrub(fmt.Errorf("postgres: audit queue: %w", err), q.s.pw)
	}
	return mark, nil
}

// Integrated implements audit.Queue: no row up to mark is left.
func (q *QueuedAudit) Integrated(ctx context.Context, mark int64) (bool, error) {
	var left bool
	err := q.s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_queue WHERE id <= $1)`, mark).Scan(&left)
	if err != nil {
		return false, scrub(fmt.Errorf("postgres: audit queue: %w", err), q.s.pw)
	}
	return !left, nil
}

// Integrate implements audit.Queue. It returns 0 at once when another
// process is the sequencer.
func (q *QueuedAudit) Integrate(ctx context.Context, first int64, max int, hashes func([][]byte) ([]tlog.Hash, error)) (int, error) {
	if ok, err := q.lead(ctx); err != nil || !ok {
		return 0, scrub(err, q.s.pw)
	}
	n := 0
	err := pgx.BeginTxFunc(ctx, q.s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		n = 0
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, auditLockKey).Scan(&locked); err != nil {
			return fmt.Errorf("postgres: audit queue: lock: %w", err)
		}
		if !locked {
			return nil
		}
		if q.sync == SyncFull {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `SELECT id, leaf FROM audit_queue ORDER BY id LIMIT $1`, max)
		if err != nil {
			return fmt.Errorf("postgres: audit queue: %w", err)
		}
		var ids []int64
		var leaves [][]byte
		for rows.Next() {
			var id int64
			var leaf []byte
			if err := rows.Scan(&id, &leaf); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: audit queue: %w", err)
			}
			ids, leaves = append(ids, id), append(leaves, leaf)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: audit queue: %w", err)
		}
		if len(leaves) == 0 {
			return nil
		}
		if err := checkSizes(ctx, tx, first); err != nil {
			return err
		}
		hs, err := hashes(leaves)
		if err != nil {
			return err
		}
		if err := insertTree(ctx, tx, first, leaves, hs); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM audit_queue WHERE id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("postgres: audit queue: %w", err)
		}
		n = len(leaves)
		return nil
	})
	if isUnique(err) {
		return 0, fmt.Errorf("postgres: audit integrate at %d: the log has grown meanwhile: %w", first, audit.ErrConflict)
	}
	if err != nil {
		return 0, scrub(err, q.s.pw)
	}
	return n, nil
}
