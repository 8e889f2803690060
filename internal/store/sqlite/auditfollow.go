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
	"slices"
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
	l := audit.New(&journalFollower{AuditStorage: st.Audit(SyncNormal), dir: queueDir(st.path)},
		audit.Config{IntegrateDelay: every, MaxBatch: followBatch})
	<-ctx.Done()
	return l.Close()
}

// journalFollower is FollowJournal's audit.Queue: it integrates from the
// journal files of other processes and enqueues nothing. It is a
// SharedQueue, so that its Log's sequencer integrates every
// IntegrateDelay whatever this process enqueued (nothing).
type journalFollower struct {
	*AuditStorage
	dir string
}

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
	names, err := filepath.Glob(filepath.Join(f.dir, "*"+journalExt))
	if err != nil {
		return 0, err
	}
	slices.Sort(names)
	done, err := doneOffsets(ctx, f.s.r)
	if err != nil {
		return 0, err
	}
	for _, p := range names {
		name := filepath.Base(p)
		from, ok := done[name]
		if !ok {
			from = int64(len(journalMagic))
		}
		leaves, end, err := readEntries(p, from, max)
		if err != nil || len(leaves) == 0 {
			continue // gone, or nothing complete past its done offset yet
		}
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
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_queue_files (name, done) VALUES (?, ?)
				ON CONFLICT (name) DO UPDATE SET done = excluded.done`, name, end); err != nil {
				return fmt.Errorf("sqlite: audit helper: %w", err)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		return len(leaves), nil
	}
	return 0, nil
}

// followBatch is the most records one of FollowJournal's transactions
// adds (unless one journal entry holds more).
const followBatch = 512

// readChunk is how much of a journal file readEntries reads at once.
const readChunk = 4 << 20

// readEntries reads the complete entries of the journal file at path
// from offset from on, at most max records unless the first entry holds
// more, and returns their leaves and the offset past the last. An entry
// cut short or failing its checksum ends them: it may be being written.
func readEntries(path string, from int64, max int) ([][]byte, int64, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer fh.Close()
	var magic [len(journalMagic)]byte
	if _, err := fh.ReadAt(magic[:], 0); err != nil || string(magic[:]) != journalMagic {
		return nil, 0, fmt.Errorf("sqlite: audit helper: %s: not an audit queue journal", path)
	}
	fi, err := fh.Stat()
	if err != nil {
		return nil, 0, err
	}
	if from < int64(len(journalMagic)) || from >= fi.Size() {
		return nil, from, nil
	}
	buf := make([]byte, min(fi.Size()-from, readChunk))
	k, err := fh.ReadAt(buf, from)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	buf = buf[:k]
	// An entry larger than the chunk: read it whole.
	if len(buf) >= 8 {
		if n := int64(binary.BigEndian.Uint32(buf)); n <= maxEntry && 8+n > int64(len(buf)) && from+8+n <= fi.Size() {
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
