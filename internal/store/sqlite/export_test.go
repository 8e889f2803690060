package sqlite

import (
	"context"
	"database/sql"

	"latchkey/internal/audit"
)

// ErrNewerSchema is errNewerSchema, for the tests.
var ErrNewerSchema = errNewerSchema

// DB returns the store's write pool, for tests that reach under the API.
func (s *Store) DB() *sql.DB { return s.w }

// AppendEntry and ParseEntry are the audit queue journal's entry codec.
var (
	AppendEntry = appendEntry
	ParseEntry  = parseEntry
)

// PathOf returns the path of the store's database file.
func PathOf(s *Store) string { return s.path }

// IndexAudit brings the search index up to date now.
func (s *Store) IndexAudit(ctx context.Context) error { return s.indexAudit(ctx) }

// MigrateTo applies the embedded migrations 1 .. version to db, a new
// database: a store as an older binary left it.
func MigrateTo(ctx context.Context, db *sql.DB, version int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL) STRICT`); err != nil {
		return err
	}
	for _, m := range ms[:version] {
		if _, err := db.ExecContext(ctx, m.SQL); err != nil {
			return err
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, m.Version); err != nil {
			return err
		}
	}
	return nil
}

// DecodeLeafRun and EncodeLeafRun are the audit leaf runs' codec.
var (
	DecodeLeafRun = decodeLeafRun
	EncodeLeafRun = encodeLeafRun
)

// ReadEntries is the audit helper's journal reader (readFrom) on the
// journal file at path.
func ReadEntries(path string, from int64, max int) ([][]byte, int64, error) {
	fh, err := openJournal(path)
	if err != nil {
		return nil, 0, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, 0, err
	}
	return readFrom(fh, fi.Size(), from, max)
}

// NewFollower is FollowJournal's queue on st's journals, for a Log of a
// test's own; close closes its files.
// counts returns how many times the Log has looked for records in the
// journals, and how many done offsets it read from the store.
func NewFollower(st *Store) (q audit.Queue, counts func() (looks, reads int64), close func()) {
	f := &journalFollower{AuditStorage: st.Audit(SyncNormal), dir: queueDir(st.path), files: map[string]*followedFile{}}
	return f, func() (int64, int64) { return f.looks.Load(), f.reads.Load() }, f.close
}
