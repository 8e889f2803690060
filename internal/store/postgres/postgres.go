// Package postgres implements store.Store and audit.Storage on a
// PostgreSQL server (github.com/jackc/pgx/v5, through a pgxpool), so that
// several latchkey processes can share one store.
//
// # Transactions
//
// Every change runs in one transaction at isolation level SERIALIZABLE,
// retried from the start when PostgreSQL refuses it with a serialization
// failure or a deadlock (SQLSTATE 40001, 40P01). A serializable
// transaction behaves as if it had run alone, which is what the SQLite
// engine gets from its single writer: a check made inside a transaction
// ("the token is not revoked") still holds when it commits, across
// processes. The usage counters of the gateway's hot path (ConsumeUse,
// RecordUse) are single atomic statements and run READ COMMITTED. Reads made of several queries run in one REPEATABLE READ,
// READ ONLY transaction, so they see a single snapshot.
//
// The audit log's appends are the exception: they run READ COMMITTED and
// are serialised by a transaction-scoped advisory lock (auditLockKey),
// taken first, so that each statement after it sees every append
// committed before (see audit.go).
//
// # Stored format
//
// Times are timestamptz (microsecond precision) holding the time truncated
// to the millisecond, NULL for the zero time.Time: a stored time comes
// back as t.Truncate(time.Millisecond).UTC(), and the instant
// 1970-01-01T00:00:00Z is distinct from zero. Scope, CIDR, event and
// header lists are text[], NULL when empty; an empty list comes back nil.
// Hashes and sealed values are bytea. The schema and the format of every
// column are documented in migrations/0001_schema.sql.
//
// # Connection strings
//
// Open takes a libpq connection string or URL
// ("postgres://user:password@host:5432/db?sslmode=verify-full"). Its
// password never appears in an error this package returns.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"latchkey/internal/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store on one PostgreSQL database. It is safe for
// concurrent use, and several processes may share the database.
type Store struct {
	pool *pgxpool.Pool
	pw   string // the DSN's password, scrubbed from errors

	ixMu   sync.Mutex // one indexAudit at a time in this process
	stop   chan struct{}
	ixDone chan struct{}
	closed sync.Once
}

// maxRetries is how many times a write transaction is tried before its
// serialization failure is returned.
const maxRetries = 30

// Open connects to the database named by dsn and brings its schema up to
// date (see migrate.go). It refuses, with an error, a database whose
// schema is newer than this binary knows. The error of an invalid or
// unreachable dsn never contains its password.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, pw, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, scrub(fmt.Errorf("postgres: connect: %w", err), pw)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, scrub(fmt.Errorf("postgres: connect: %w", err), pw)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, scrub(err, pw)
	}
	s := &Store{pool: pool, pw: pw, stop: make(chan struct{}), ixDone: make(chan struct{})}
	go s.indexer()
	return s, nil
}

// ParseDSN parses a connection string as Open does and returns the pool
// configuration and the password it names ("" if none). Its error never
// contains the password.
func ParseDSN(dsn string) (*pgxpool.Config, string, error) {
	pw := dsnPassword(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error quotes the string; pgx redacts what it can
		// recognise, scrub removes what it names exactly.
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil {
			err = pe.Unwrap()
		}
		return nil, "", scrub(fmt.Errorf("postgres: invalid connection string: %w", err), pw)
	}
	if cfg.ConnConfig.Password != "" {
		pw = cfg.ConnConfig.Password
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		// So that pg_stat_activity (and pg_locks through it) names the
		// process: which replica is the audit sequencer, for one.
		cfg.ConnConfig.RuntimeParams["application_name"] = ApplicationName()
	}
	return cfg, pw, nil
}

// ApplicationName is the application_name of this process's connections
// unless the connection string sets one: "latchkey-PID".
func ApplicationName() string { return fmt.Sprintf("latchkey-%d", os.Getpid()) }

// dsnPassword returns the password a URL connection string names, or ""
// (a keyword/value string's password is taken from the parsed config).
func dsnPassword(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}

// Redact returns dsn with its password replaced by "xxxxx", for messages.
// A string it cannot parse as a URL is replaced entirely if it names a
// password.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		if strings.Contains(dsn, "password") {
			return "(connection string)"
		}
		return fmt.Sprintf("%q", dsn)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "(connection string)"
	}
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// scrubbed is an error whose text has the password removed; it still
// unwraps to the original, so callers can branch on it.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// scrub returns err with every occurrence of pw (and of its URL-escaped
// forms) removed from its text, and its text on one line (a failed
// connection to a host with several addresses reports one per line).
func scrub(err error, pw string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if pw != "" {
		for _, p := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	if !strings.Contains(msg, "\n") && msg == err.Error() {
		return err
	}
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
	return &scrubbed{msg: msg, err: err}
}

// Close stops the indexer and closes the pool.
func (s *Store) Close() error {
	s.closed.Do(func() {
		close(s.stop)
		<-s.ixDone
		s.pool.Close()
	})
	return nil
}

// write runs fn in a SERIALIZABLE transaction and commits it if fn
// returns nil. A serialization failure or deadlock, in fn or at commit,
// runs fn again from the start in a new transaction: fn must not keep
// state from one run to the next.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.writeAt(ctx, pgx.Serializable, fn)
}

// writeCommitted is write at READ COMMITTED, for the hot-path counters
// (ConsumeUse, RecordUse) whose every change is one UPDATE or upsert that
// re-reads the row it locked: such a statement is atomic at that level,
// and concurrent ones queue on the row lock instead of failing and
// retrying as they would under SERIALIZABLE.
func (s *Store) writeCommitted(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.writeAt(ctx, pgx.ReadCommitted, fn)
}

func (s *Store) writeAt(ctx context.Context, iso pgx.TxIsoLevel, fn func(tx pgx.Tx) error) error {
	for try := 0; ; try++ {
		err := s.tryWrite(ctx, iso, fn)
		if err == nil || !retryable(err) || try == maxRetries {
			return scrub(err, s.pw)
		}
		// Back off a little, at random, so that the same two
		// transactions do not collide again.
		d := time.Duration(rand.Int64N(int64(time.Millisecond)<<min(try, 6))) + 100*time.Microsecond
		select {
		case <-ctx.Done():
			return scrub(err, s.pw)
		case <-time.After(d):
		}
	}
}

func (s *Store) tryWrite(ctx context.Context, iso pgx.TxIsoLevel, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: iso})
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// read runs fn in a read-only transaction, so that all its queries see one
// snapshot.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return scrub(fmt.Errorf("postgres: begin: %w", err), s.pw)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(tx)
}

// retryable reports whether err is a serialization failure or deadlock,
// after which the transaction may succeed if run again.
func retryable(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && (e.Code == "40001" || e.Code == "40P01")
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

// msec is the stored form of t: t truncated to the millisecond, or NULL
// for zero.
func msec(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t.Truncate(time.Millisecond).UTC(), Valid: true}
}

// bound is t for a comparison, truncated like a stored time so that
// "stored > t" and "stored <= t" keep their meaning. The zero time is
// kept (not NULL): it is earlier than every stored time.
func bound(t time.Time) time.Time {
	return t.Truncate(time.Millisecond).UTC()
}

// timeOf is the time.Time a stored value stands for.
func timeOf(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// norm is t as a store returns it after storing it.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Millisecond).UTC()
}

// list is the stored form of a list of strings: NULL when empty.
func list(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

// nonZero refuses a zero revocation time, which would read as "not revoked".
func nonZero(at time.Time) error {
	if at.IsZero() {
		return errors.New("postgres: revocation time is zero")
	}
	return nil
}

// affected returns the number of rows a command changed.
func affected(tag pgconn.CommandTag, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
