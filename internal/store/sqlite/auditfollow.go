package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

// FollowJournal is the audit helper process of the SQLite store at path
// (AuditHelper): every every, until ctx is done, it adds to the tree the
// records that the processes writing audit logs on the store (QueuedAudit)
// have journalled, reading their journal files as they grow. Each
// addition is one transaction that also moves the journal file's done
// offset, so that whoever integrates a record first (this process, or
// the one that journalled it, once it has waited too long) integrates it
// exactly once: the other's transaction finds the offset moved and
// gives way.
func FollowJournal(ctx context.Context, path string, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("sqlite: audit helper: every must be positive, not %s", every)
	}
	// The index is another process's (IndexAudit): never step in here;
	// the WAL is serve's to checkpoint.
	st, err := Open(ctx, path, ExternalIndexer(math.MaxInt64), withoutCheckpointer())
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while opening
		}
		return err
	}
	defer st.Close()
	// Small batches: each holds the store's write lock, which serve's
	// writes wait for, from a process the kernel may preempt for long.
	f := &journalFollower{AuditStorage: st.Audit(SyncNormal), dir: queueDir(st.path), files: map[string]*followedFile{}}
	defer f.close()
	l := audit.New(f, audit.Config{IntegrateDelay: every, MaxBatch: followBatch})
	<-ctx.Done()
	return l.Close()
}

// journalFollower is FollowJournal's audit.Queue: it integrates from the
// journal files of other processes and enqueues nothing. It is a
// SharedQueue, so that its Log's sequencer integrates every
// IntegrateDelay whatever this process enqueued (nothing).
//
// It runs every IntegrateDelay (20 ms in serve's helper) for the life of
// the server, busy or idle, so a look that finds nothing new costs two
// fstat calls: the journal files stay open between looks, the directory
// is listed again only when its mtime moves (or moved within the last
// relist interval, which a coarse clock tick may hide, or a relist
// interval has passed), and the store is asked for a file's done offset
// only when the file has grown past the last one known.
type journalFollower struct {
	*AuditStorage
	dir    string
	d      *os.File                 // the directory, for its mtime
	dirMod time.Time                // its mtime at the last listing
	listed time.Time                // when it was last listed
	files  map[string]*followedFile // the journal files listed, by name
	names  []string                 // their names, in order
	looks  atomic.Int64             // calls of Integrate (tests)
	reads  atomic.Int64             // done offsets read from the store (tests)
}

// followedFile is a journal file the follower holds open, and the
// lowest its done offset can be: the last one read or written. own: the
// follower wrote it, and no transaction of its own on the file has
// failed since, so the file is most likely done to there still (unless
// the journalling process integrated some itself, which the next
// transaction's check finds).
type followedFile struct {
	f    *os.File
	done int64
	own  bool
}

// relistEvery is the longest the follower trusts the directory's mtime
// to tell it of a new journal file.
const relistEvery = time.Second

var _ audit.SharedQueue = (*journalFollower)(nil)

func (f *journalFollower) Shared() {}

var errFollower = errors.New("sqlite: audit helper: it enqueues nothing")

// Enqueue implements audit.Queue: it refuses.
func (f *journalFollower) Enqueue(context.Context, [][]byte) (int64, error) { return 0, errFollower }

// Mark implements audit.Queue: nothing is enqueued through it.
func (f *journalFollower) Mark(context.Context) (int64, error) { return 0, nil }

// Integrated implements audit.Queue: nothing is enqueued through it.
func (f *journalFollower) Integrated(context.Context, int64) (bool, error) { return true, nil }

// Integrate implements audit.Queue: it adds the next entries, at most max
// records unless the first entry holds more, of the first journal file
// (by name) that has any past its done offset.
func (f *journalFollower) Integrate(ctx context.Context, first int64, max int, hashes func([][]byte) ([]tlog.Hash, error)) (int, error) {
	f.looks.Add(1)
	if err := f.list(); err != nil {
		return 0, err
	}
	for _, name := range f.names {
		ff := f.files[name]
		fi, err := ff.f.Stat()
		if err != nil || fi.Size() <= ff.done {
			continue // nothing past the done offset known
		}
		from := ff.done
		if !ff.own {
			if from, err = f.doneOffset(ctx, name); err != nil {
				return 0, err
			}
			ff.done = from
		}
		leaves, end, err := readFrom(ff.f, fi.Size(), from, max)
		if err != nil || len(leaves) == 0 {
			continue // nothing complete past its done offset yet
		}
		ff.own = false // until this transaction commits
		hs, err := hashes(leaves)
		if err != nil {
			return 0, err
		}
		err = f.appendWith(ctx, first, leaves, hs, func(tx *sql.Tx) error {
			d, err := doneOffset(ctx, tx, name)
			if err != nil {
				return err
			}
			if d != from {
				return fmt.Errorf("sqlite: audit helper: %s is done to %d, not %d: %w", name, d, from, audit.ErrConflict)
			}
			// No row: a file nobody has integrated from yet, or one
			// removed whole and its row deleted since this process
			// opened it (removal comes first, so it shows now), which
			// must not be integrated again from the start.
			if d == int64(len(journalMagic)) {
				if _, err := os.Stat(filepath.Join(f.dir, name)); err != nil {
					f.listed = time.Time{} // list again on the next look
					return fmt.Errorf("sqlite: audit helper: %s: %v: %w", name, err, audit.ErrConflict)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_queue_files (name, done) VALUES (?, ?)
				ON CONFLICT (name) DO UPDATE SET done = excluded.done`, name, end); err != nil {
				return fmt.Errorf("sqlite: audit helper: %w", err)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		ff.done, ff.own = end, true
		return len(leaves), nil
	}
	return 0, nil
}

// doneOffset reads journal file name's done offset from the store: the
// header's length if it has no row yet.
func (f *journalFollower) doneOffset(ctx context.Context, name string) (int64, error) {
	f.reads.Add(1)
	var done int64
	err := f.s.r.QueryRowContext(ctx, `SELECT done FROM audit_queue_files WHERE name = ?`, name).Scan(&done)
	if errors.Is(err, sql.ErrNoRows) {
		return int64(len(journalMagic)), nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: audit helper: %w", err)
	}
	return done, nil
}

// list brings the open journal files up to date with the directory, if
// it may have changed: it opens the new ones (skipping any that is not a
// journal) and closes those removed.
func (f *journalFollower) list() error {
	if f.d == nil {
		d, err := os.Open(f.dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // no process has journalled yet
			}
			return fmt.Errorf("sqlite: audit helper: %w", err)
		}
		f.d = d
	}
	fi, err := f.d.Stat()
	if err != nil {
		return fmt.Errorf("sqlite: audit helper: %w", err)
	}
	now := time.Now()
	mod := fi.ModTime()
	if mod.Equal(f.dirMod) && now.Sub(mod) > relistEvery && now.Sub(f.listed) < relistEvery {
		return nil
	}
	entries, err := os.ReadDir(f.dir) // sorted by name
	if err != nil {
		return fmt.Errorf("sqlite: audit helper: %w", err)
	}
	f.dirMod, f.listed = mod, now
	present := make(map[string]bool, len(entries))
	f.names = f.names[:0]
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, journalExt) || strings.HasPrefix(name, ".") {
			continue
		}
		if _, ok := f.files[name]; !ok {
			fh, err := openJournal(filepath.Join(f.dir, name))
			if err != nil {
				continue // gone already, or not (yet) a journal
			}
			f.files[name] = &followedFile{f: fh}
		}
		present[name] = true
		f.names = append(f.names, name)
	}
	for name, ff := range f.files {
		if !present[name] {
			ff.f.Close()
			delete(f.files, name)
		}
	}
	return nil
}

// close closes the directory and the journal files.
func (f *journalFollower) close() {
	if f.d != nil {
		f.d.Close()
	}
	for _, ff := range f.files {
		ff.f.Close()
	}
}

// followBatch is the most records one of FollowJournal's transactions
// adds (unless one journal entry holds more).
const followBatch = 512

// readChunk is how much of a journal file readEntries reads at once.
const readChunk = 4 << 20

// openJournal opens the journal file at path for reading, and checks
// its header.
func openJournal(path string) (*os.File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var magic [len(journalMagic)]byte
	if _, err := fh.ReadAt(magic[:], 0); err != nil || string(magic[:]) != journalMagic {
		fh.Close()
		return nil, fmt.Errorf("sqlite: audit helper: %s: not an audit queue journal", path)
	}
	return fh, nil
}

// readFrom reads the complete entries of the journal file fh, size bytes
// long, from offset from on, at most max records unless the first entry
// holds more, and returns their leaves and the offset past the last. An
// entry cut short or failing its checksum ends them: it may be being
// written.
func readFrom(fh *os.File, size, from int64, max int) ([][]byte, int64, error) {
	if from < int64(len(journalMagic)) || from >= size {
		return nil, from, nil
	}
	buf := make([]byte, min(size-from, readChunk))
	k, err := fh.ReadAt(buf, from)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	buf = buf[:k]
	// An entry larger than the chunk: read it whole.
	if len(buf) >= 8 {
		if n := int64(binary.BigEndian.Uint32(buf)); n <= maxEntry && 8+n > int64(len(buf)) && from+8+n <= size {
			buf = make([]byte, 8+n)
			if _, err := fh.ReadAt(buf, from); err != nil {
				return nil, 0, err
			}
		}
	}
	var leaves [][]byte
	off := 0
	for off < len(buf) && (len(leaves) == 0 || len(leaves) < max) {
		ls, n, err := parseEntry(buf[off:])
		if err != nil {
			break
		}
		if len(leaves) > 0 && len(leaves)+len(ls) > max {
			break
		}
		leaves = append(leaves, ls...)
		off += n
	}
	return leaves, from + int64(off), nil
}
