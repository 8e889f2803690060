// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go).
//
// # Connections
//
// A Store holds two database/sql pools on the same file:
//
//   - a write pool of exactly one connection. Every change runs there, in a
//     transaction begun with BEGIN IMMEDIATE (the driver's _txlock=immediate),
//     so writers queue in database/sql instead of racing for SQLite's write
//     lock. Two writers in one process therefore never see SQLITE_BUSY, and a
//     transaction that reads before it writes can never fail half-way on a
//     lock upgrade. Another process writing the same file is waited for up to
//     busy_timeout (5 s).
//   - a read pool of several connections opened with query_only. In WAL mode
//     readers never block the writer nor each other, and each read sees the
//     last committed state. Reads made of several queries run in one read
//     transaction, so they see a single snapshot.
//
// # Durability
//
// The database runs with journal_mode=WAL and synchronous=NORMAL. A commit
// appends to the write-ahead log without fsync; the log is synced at each
// checkpoint. That keeps every committed transaction across a crash or kill
// of the application (the data is in the operating system's cache), and the
// database is never corrupted; only a power loss or operating system crash
// can roll back the last transactions before the latest checkpoint. This is
// the durability SQLite recommends for WAL, and it makes a commit cheap
// enough for thousands of token writes a second.
//
// # Stored format
//
// Times are INTEGER unix milliseconds in UTC, NULL for the zero time.Time:
// a stored time comes back as t.Truncate(time.Millisecond).UTC(), and the
// instant 1970-01-01T00:00:00Z is stored as 0, distinct from zero. Scope
// and CIDR lists are JSON arrays of strings, NULL when empty; an empty list
// comes back nil. The schema and the format of every column are documented
// in migrations/0001_init.sql and the migrations after it.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"latchkey/internal/store"
)

var _ store.Store = (*Store)(nil)

// busyTimeout is how long, in milliseconds, a connection waits for a lock
// held by another process before it gives up with SQLITE_BUSY.
const busyTimeout = 5000

// mmapSize is how much of the database file, in bytes, a report
// connection maps into memory. Reports read most of the tokens table;
// through the map they read pages in place instead of copying each one in
// with a system call, and every reader shares the operating system's copy.
// Point reads do not map: every commit makes the next read transaction
// remap, and on the issue path the munmap cost a quarter of the time.
const mmapSize = 256 << 20

// Store is a store.Store backed by one SQLite database file. It is safe for
// concurrent use.
type Store struct {
	w    *sql.DB // one connection; every write transaction
	r    *sql.DB // several query_only connections; point reads
	scan *sql.DB // several query_only, memory-mapped connections; reports
	ck   *sql.DB // one connection: WAL checkpoints, off the writer's path
	sw   *sql.DB // the audit search index's writer (auditindex.go)
	sr   *sql.DB // its readers

	path string // absolute path of the database file

	ix       *searchIndex
	external bool  // another process runs the indexer (ExternalIndexer)
	maxLag   int64 // how far behind it may fall before this one steps in
	// helperHold: records journalled through QueuedAudit are left this
	// long to an audit helper process (AuditHelper); 0: no helper.
	helperHold time.Duration
	// noCheckpointer: another process copies the WAL (withoutCheckpointer).
	noCheckpointer bool
	stopCk         chan struct{}
	ckDone         chan struct{}
	ixDone         chan struct{}
	closed         sync.Once
}

// An Option changes how Open opens a store.
type Option func(*Store)

// ExternalIndexer leaves keeping the audit search index up to date to
// another process, which runs IndexAudit on the same file, as long as the
// index is at most maxLag records behind the log; past that the store
// catches it up itself.
func ExternalIndexer(maxLag int64) Option {
	return func(s *Store) { s.external, s.maxLag = true, maxLag }
}

// AuditHelper has the QueuedAudit of the store leave the journalled
// records to an audit helper process, which runs FollowJournal on the
// same file at the lowest priority, for hold before it integrates them
// into the tree itself. The helper is never needed: while it keeps up,
// this process only takes its records off the queue; if it dies or
// starves, this process integrates them hold later.
func AuditHelper(hold time.Duration) Option {
	return func(s *Store) { s.helperHold = hold }
}

// withoutCheckpointer leaves copying the WAL into the database file to the
// process whose store it is: the audit helper (FollowJournal) runs at the
// lowest priority, and a checkpoint it began could hold up serve's writes
// for as long as the kernel leaves it waiting.
func withoutCheckpointer() Option {
	return func(s *Store) { s.noCheckpointer = true }
}

// HelperHold is serve's hold for AuditHelper: ten of the helper's rounds
// at audit.DefaultIntegrateDelay.
const HelperHold = 200 * time.Millisecond

// MaxIndexLag is serve's maxLag for ExternalIndexer: about four seconds of
// indexing, and of a search that finds the index that far behind.
const MaxIndexLag = 1 << 18

// checkpointEvery is how often the checkpointer copies the WAL into the
// database file.
const checkpointEvery = 200 * time.Millisecond

// Open opens the database at path, creating the file if it does not exist,
// and brings its schema up to date. It refuses, with an error, a database
// whose schema is newer than this binary knows.
//
// By default the store keeps its audit search index up to date itself, a
// second behind the log; with ExternalIndexer it leaves that to another
// process (IndexAudit) unless it falls far behind, and a search or check
// that finds the index behind catches it up.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	// The driver takes a file: URI; a relative path would be read as its
	// authority, so make it absolute first.
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w, err := openPool(ctx, path, url.Values{
		"_txlock":       {"immediate"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"NORMAL"},
		// No checkpoint inside a commit: an automatic one ran in whichever
		// write crossed the threshold and held the only writer for 100 ms
		// and more under audit load (every request waiting behind it).
		// The checkpointer goroutine does it instead, on its own
		// connection, without blocking writers (PASSIVE).
		// Statement journals (multi-row INSERTs) stay in memory.
		"_pragma": {"wal_autocheckpoint(0)", "temp_store(MEMORY)"},
	})
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	r, err := openPool(ctx, path, url.Values{"_query_only": {"1"}})
	if err != nil {
		w.Close()
		return nil, err
	}
	scan, err := openPool(ctx, path, url.Values{
		"_query_only": {"1"},
		"_pragma":     {fmt.Sprintf("mmap_size(%d)", mmapSize)},
	})
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	for _, db := range []*sql.DB{r, scan} {
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
	}
	ck, err := openPool(ctx, path, url.Values{"_synchronous": {"NORMAL"}})
	if err != nil {
		w.Close()
		r.Close()
		scan.Close()
		return nil, err
	}
	ck.SetMaxOpenConns(1)
	sw, sr, err := openSearch(ctx, path)
	if err != nil {
		w.Close()
		r.Close()
		scan.Close()
		ck.Close()
		return nil, err
	}
	s := &Store{path: path, w: w, r: r, scan: scan, ck: ck, sw: sw, sr: sr, ix: &searchIndex{src: scan, w: sw},
		stopCk: make(chan struct{}), ckDone: make(chan struct{}), ixDone: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	if s.noCheckpointer {
		close(s.ckDone)
	} else {
		go s.checkpointer()
	}
	go s.indexer()
	return s, nil
}

// restartFrames is the WAL length (frames of one page, so 32 MiB) past
// which the checkpointer also restarts the WAL. A restart holds the
// writer while it waits for readers, so it is kept rare: at 1,024 frames
// the audited gateway's added p99 measured 7-8.5 ms, without restarts
// 5-7 ms.
const restartFrames = 8192

// checkpointer keeps the WAL short, off the writers' path. Every
// checkpointEvery it copies the WAL into the database file PASSIVE: as
// far as readers allow, never waiting for or blocking a writer. Under
// continuous writes a passive checkpoint never catches up with the last
// frame, so the WAL would grow for ever: once it is longer than
// restartFrames, a RESTART checkpoint copies the few frames left (holding
// the writer only for that) and makes the next write start the file over.
func (s *Store) checkpointer() {
	defer close(s.ckDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopCk:
			return
		case <-t.C:
		}
		// Errors (SQLITE_BUSY while the writer or another checkpoint
		// holds a lock) only mean this round did less; the next carries on.
		var busy, frames, copied int
		if err := s.ck.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil || frames < restartFrames {
			continue
		}
		_ = s.ck.QueryRow(`PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &frames, &copied)
	}
}

// openPool opens a connection pool on path with the settings every
// connection shares plus extra, and checks that it can connect.
func openPool(ctx context.Context, path string, extra url.Values) (*sql.DB, error) {
	q := url.Values{
		"_busy_timeout": {fmt.Sprint(busyTimeout)},
		"_foreign_keys": {"on"},
	}
	for k, v := range extra {
		q[k] = v
	}
	dsn := (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// Close stops the checkpointer and closes the connection pools. Closing
// the last connection checkpoints what is left of the WAL.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.stopCk)
		<-s.ckDone
		<-s.ixDone
		err = errors.Join(s.ix.close(), s.sr.Close(), s.sw.Close(), s.ck.Close(), s.scan.Close(), s.r.Close(), s.w.Close())
	})
	return err
}

// write runs fn in a write transaction and commits it if fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// read runs fn in a read-only transaction, so that all its queries see one
// snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return readOn(ctx, s.r, fn)
}

// readScan is read on the report connections.
func (s *Store) readScan(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return readOn(ctx, s.scan, fn)
}

func readOn(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE ||
		e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// msec is the stored form of t: unix milliseconds, or NULL for zero.
func msec(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// bound is t in unix milliseconds for a comparison, truncated like a stored
// time so that "stored > t" and "stored <= t" keep their meaning.
func bound(t time.Time) int64 {
	return t.UnixMilli()
}

// timeOf is the time.Time a stored millisecond value stands for.
func timeOf(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64).UTC()
}

// norm is t as a store returns it after storing it.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Millisecond).UTC()
}

// nonZero refuses a zero revocation time, which would read as "not revoked".
func nonZero(at time.Time) error {
	if at.IsZero() {
		return errors.New("sqlite: revocation time is zero")
	}
	return nil
}
