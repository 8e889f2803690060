package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"latchkey/internal/audit"
)

// QueuedAudit is an audit.Queue on a Store: an acknowledged record is one
// write to an append-only journal file in the queue directory beside the
// database (queueDir), and the Log's sequencer adds the journalled
// records to audit_leaf_runs and audit_hash_runs in large transactions
// behind.
// Each such transaction also records, in audit_queue_files, how far the
// journal file has been added, so that every journalled record reaches
// the tree exactly once, however the process ends.
//
// Each process writes its own journal file and holds an exclusive flock
// on it. When a QueuedAudit is opened it takes over the files no live
// process holds (those of a process that died) and queues what they hold
// beyond their done offset ahead of anything new.
//
// Durability is the Sync's: SyncNormal writes without fsync (an
// acknowledged record survives a kill of the process, as a commit to the
// WAL does), SyncFull fsyncs each write.
type QueuedAudit struct {
	*AuditStorage
	dir string

	// hold is how long a record is left to the audit helper process
	// (AuditHelper) before this process integrates it; 0: no helper.
	hold time.Duration

	imu sync.Mutex // one Integrate or Reconcile at a time

	mu      sync.Mutex // guards the fields below; held across a write
	cur     *journalFile
	files   map[string]*journalFile // cur and the files taken over
	pending []jentry                // journalled, not in the tree, oldest first
	written int64                   // records journalled (the marks)
	done    int64                   // records of those in the tree
	helped  int                     // records taken off as the helper's, not yet Reconciled
	err     error                   // set when the current file cannot be trusted
}

var _ audit.Queue = (*QueuedAudit)(nil)

// journalFile is one open, flocked journal file.
type journalFile struct {
	name string // base name
	f    *os.File
	size int64 // bytes written (current) or valid (taken over)
	done int64 // bytes whose records are in the tree
}

// jentry is one journal entry not yet in the tree.
type jentry struct {
	file       *journalFile
	start, end int64 // offsets of the entry in file, and just past it
	leaves     [][]byte
	mark       int64     // written after this entry
	at         time.Time // when it was journalled (zero: taken over)
}

// Journal file format: the 8-byte header journalMagic, then entries, each
// a 4-byte big-endian payload length, the 4-byte CRC-32C (Castagnoli) of
// the payload, and the payload: a uvarint count of leaves, then each leaf
// as a uvarint length and its bytes. An entry that is cut short or fails
// its checksum ends the file: its write never completed, so it was never
// acknowledged.
const (
	journalMagic = "LKAUDQ1\n"
	journalExt   = ".lkq"
	// maxEntry bounds a payload: audit.Log batches are at most a few
	// thousand records of at most audit.MaxLeafSize bytes.
	maxEntry = 64 << 20
	// rotateSize: once everything written to the current file is in the
	// tree and the file is larger than this, a new file replaces it.
	rotateSize = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// queueDir is the journal directory of the store at path: "latchkey.db"
// has "latchkey-auditq".
func queueDir(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + "-auditq"
}

// QueuedAudit returns the queued audit storage of s with durability
// sync, after taking over the journal files of processes that died.
func (s *Store) QueuedAudit(ctx context.Context, sync Sync) (*QueuedAudit, error) {
	q := &QueuedAudit{AuditStorage: s.Audit(sync), dir: queueDir(s.path), files: map[string]*journalFile{}, hold: s.helperHold}
	if err := os.MkdirAll(q.dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: audit queue: %w", err)
	}
	if err := q.recover(ctx); err != nil {
		q.Close()
		return nil, err
	}
	cur, err := q.create()
	if err != nil {
		q.Close()
		return nil, err
	}
	q.cur = cur
	q.files[cur.name] = cur
	return q, nil
}

// Close closes the journal files. Records still pending stay in them for
// the next open.
func (q *QueuedAudit) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var errs []error
	for _, f := range q.files {
		errs = append(errs, f.f.Close())
	}
	q.files = map[string]*journalFile{}
	q.cur = nil
	q.err = audit.ErrClosed
	return errors.Join(errs...)
}

// create makes a new journal file, flocked before it gets its final name
// so that no other process can mistake it for a dead one's.
func (q *QueuedAudit) create() (*journalFile, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	name := hex.EncodeToString(b[:]) + journalExt
	tmp := filepath.Join(q.dir, "."+name+".new")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit queue: %w", err)
	}
	fail := func(err error) (*journalFile, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("sqlite: audit queue: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fail(err)
	}
	if _, err := f.Write([]byte(journalMagic)); err != nil {
		return fail(err)
	}
	if q.sync == SyncFull {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(q.dir, name)); err != nil {
		return fail(err)
	}
	if q.sync == SyncFull {
		if err := syncDir(q.dir); err != nil {
			return fail(err)
		}
	}
	return &journalFile{name: name, f: f, size: int64(len(journalMagic)), done: int64(len(journalMagic))}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// recover takes over every journal file no live process holds: what it
// holds past its done offset is queued; a file with nothing left is
// removed. Rows of audit_queue_files whose file is gone are deleted.
func (q *QueuedAudit) recover(ctx context.Context) error {
	done, err := doneOffsets(ctx, q.s.r)
	if err != nil {
		return err
	}
	names, err := filepath.Glob(filepath.Join(q.dir, "*"+journalExt))
	if err != nil {
		return err
	}
	slices.Sort(names) // an order for the files of several dead processes
	present := map[string]bool{}
	for _, p := range names {
		name := filepath.Base(p)
		present[name] = true
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("sqlite: audit queue: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // a live process's journal
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, 1<<34))
		if err != nil {
			f.Close()
			return fmt.Errorf("sqlite: audit queue %s: %w", name, err)
		}
		jf := &journalFile{name: name, f: f, done: done[name]}
		entries, valid, err := parseJournal(b, jf.done)
		if err != nil {
			f.Close()
			return fmt.Errorf("sqlite: audit queue %s: %w", name, err)
		}
		jf.size = valid
		if len(entries) == 0 {
			if err := q.remove(ctx, jf); err != nil {
				return err
			}
			continue
		}
		q.files[name] = jf
		for _, e := range entries {
			q.written += int64(len(e.leaves))
			q.pending = append(q.pending, jentry{file: jf, start: e.start, end: e.end, leaves: e.leaves, mark: q.written})
		}
	}
	for name := range done {
		if !present[name] {
			if _, err := q.s.w.ExecContext(ctx, `DELETE FROM audit_queue_files WHERE name = ?`, name); err != nil {
				return fmt.Errorf("sqlite: audit queue: %w", err)
			}
		}
	}
	q.done = 0 // marks count from this open; the recovered ones come first
	return nil
}

// remove closes and deletes a journal file whose records are all in the
// tree, then its row (a crash between the two leaves a row for no file,
// which recover deletes).
func (q *QueuedAudit) remove(ctx context.Context, jf *journalFile) error {
	jf.f.Close()
	if err := os.Remove(filepath.Join(q.dir, jf.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sqlite: audit queue: %w", err)
	}
	if _, err := q.s.w.ExecContext(ctx, `DELETE FROM audit_queue_files WHERE name = ?`, jf.name); err != nil {
		return fmt.Errorf("sqlite: audit queue: %w", err)
	}
	return nil
}

// parsedEntry is an entry parseJournal read.
type parsedEntry struct {
	start, end int64
	leaves     [][]byte
}

// parseJournal checks the header of a journal file's bytes b and returns
// the entries that start at or after from, and the offset past the last
// valid entry. An entry cut short or failing its checksum ends the valid
// part (it was never acknowledged); a bad header, or from inside an entry
// or past the valid part, is an error.
func parseJournal(b []byte, from int64) ([]parsedEntry, int64, error) {
	if len(b) < len(journalMagic) || string(b[:len(journalMagic)]) != journalMagic {
		return nil, 0, errors.New("not an audit queue journal")
	}
	off := int64(len(journalMagic))
	if from < off {
		from = off
	}
	var out []parsedEntry
	for off < int64(len(b)) {
		leaves, n, err := parseEntry(b[off:])
		if err != nil {
			break
		}
		off += int64(n)
		if off > from {
			if off-int64(n) < from {
				return nil, 0, fmt.Errorf("done offset %d is inside the entry at %d", from, off-int64(n))
			}
			out = append(out, parsedEntry{start: off - int64(n), end: off, leaves: leaves})
		}
	}
	if from > off {
		return nil, 0, fmt.Errorf("done offset %d is past the journal's %d valid bytes", from, off)
	}
	return out, off, nil
}

// appendEntry appends the journal entry of leaves to dst.
func appendEntry(dst []byte, leaves [][]byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, 8)...)
	dst = binary.AppendUvarint(dst, uint64(len(leaves)))
	for _, l := range leaves {
		dst = binary.AppendUvarint(dst, uint64(len(l)))
		dst = append(dst, l...)
	}
	payload := dst[start+8:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst
}

var errEntry = errors.New("sqlite: audit queue: bad journal entry")

// parseEntry parses the entry at the start of b and returns its leaves
// (which alias b) and its length.
func parseEntry(b []byte) ([][]byte, int, error) {
	if len(b) < 8 {
		return nil, 0, errEntry
	}
	n := binary.BigEndian.Uint32(b)
	if n == 0 || n > maxEntry || int64(n) > int64(len(b)-8) {
		return nil, 0, errEntry
	}
	payload := b[8 : 8+n]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, errEntry
	}
	count, k := uvarint(payload)
	if k <= 0 || count == 0 || count > uint64(len(payload)) {
		return nil, 0, errEntry
	}
	payload = payload[k:]
	leaves := make([][]byte, 0, count)
	for range count {
		l, k := uvarint(payload)
		if k <= 0 || l > audit.MaxLeafSize || l > uint64(len(payload)-k) {
			return nil, 0, errEntry
		}
		leaves = append(leaves, payload[k:k+int(l)])
		payload = payload[k+int(l):]
	}
	if len(payload) != 0 {
		return nil, 0, errEntry
	}
	return leaves, 8 + int(n), nil
}

// uvarint is binary.Uvarint refusing a non-minimal encoding (k <= 0), so
// that an entry has exactly one encoding.
func uvarint(b []byte) (uint64, int) {
	v, k := binary.Uvarint(b)
	if k > 0 && k != len(binary.AppendUvarint(nil, v)) {
		return 0, -1
	}
	return v, k
}

// Enqueue implements audit.Queue: one write (and with SyncFull one fsync)
// of one entry to the current journal file.
func (q *QueuedAudit) Enqueue(ctx context.Context, leaves [][]byte) (int64, error) {
	if len(leaves) == 0 {
		return 0, errors.New("sqlite: audit queue: no leaves")
	}
	for _, l := range leaves {
		if len(l) > audit.MaxLeafSize {
			return 0, fmt.Errorf("sqlite: audit queue: a leaf of %d bytes, limit %d", len(l), audit.MaxLeafSize)
		}
	}
	buf := appendEntry(nil, leaves)
	if len(buf)-8 > maxEntry {
		return 0, fmt.Errorf("sqlite: audit queue: a batch of %d bytes, limit %d", len(buf)-8, maxEntry)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return 0, q.err
	}
	cur := q.cur
	if _, err := cur.f.Write(buf); err != nil {
		// Cut off whatever part of the entry was written, so that later
		// entries are not hidden behind a broken one; if that fails too
		// the file cannot be trusted any more.
		if terr := cur.f.Truncate(cur.size); terr != nil {
			q.err = fmt.Errorf("sqlite: audit queue: journal unusable after a failed write: %w", err)
		}
		return 0, fmt.Errorf("sqlite: audit queue: %w", err)
	}
	if q.sync == SyncFull {
		if err := cur.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the pages:
			// nothing in this file can be trusted to be durable.
			q.err = fmt.Errorf("sqlite: audit queue: journal unusable after a failed fsync: %w", err)
			return 0, q.err
		}
	}
	start := cur.size
	cur.size += int64(len(buf))
	q.written += int64(len(leaves))
	q.pending = append(q.pending, jentry{file: cur, start: start, end: cur.size, leaves: slices.Clone(leaves),
		mark: q.written, at: time.Now()})
	return q.written, nil
}

// Mark implements audit.Queue: the journalled records of this process
// and those taken over.
func (q *QueuedAudit) Mark(ctx context.Context) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.written, nil
}

// Integrated implements audit.Queue.
func (q *QueuedAudit) Integrated(ctx context.Context, mark int64) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.done >= mark, nil
}

// Integrate implements audit.Queue. Its transaction first checks that
// each journal file's done offset is still where this process left it:
// if the audit helper (or another process) integrated some of these
// records meanwhile, it takes them off the queue (for Reconcile to count)
// and fails with audit.ErrConflict, and the Log retries with the rest.
func (q *QueuedAudit) Integrate(ctx context.Context, first int64, max int, hashes func([][]byte) ([]tlog.Hash, error)) (int, error) {
	q.imu.Lock()
	defer q.imu.Unlock()
	q.mu.Lock()
	var take []jentry
	n := 0
	for _, e := range q.pending {
		if len(take) > 0 && n+len(e.leaves) > max {
			break
		}
		take = append(take, e)
		n += len(e.leaves)
	}
	q.mu.Unlock()
	if n == 0 {
		return 0, nil
	}
	leaves := make([][]byte, 0, n)
	starts := map[*journalFile]int64{} // each file's first entry in take
	ends := map[*journalFile]int64{}
	for _, e := range take {
		leaves = append(leaves, e.leaves...)
		if _, ok := starts[e.file]; !ok {
			starts[e.file] = e.start
		}
		ends[e.file] = e.end
	}
	hs, err := hashes(leaves)
	if err != nil {
		return 0, err
	}
	var moved map[string]int64 // done offsets another process moved
	err = q.appendWith(ctx, first, leaves, hs, func(tx *sql.Tx) error {
		for f, start := range starts {
			done, err := doneOffset(ctx, tx, f.name)
			if err != nil {
				return err
			}
			if done != start {
				moved = map[string]int64{f.name: done}
				return fmt.Errorf("sqlite: audit queue: %s is done to %d, not %d: %w", f.name, done, start, audit.ErrConflict)
			}
		}
		for f, end := range ends {
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_queue_files (name, done) VALUES (?, ?)
				ON CONFLICT (name) DO UPDATE SET done = excluded.done`, f.name, end); err != nil {
				return fmt.Errorf("sqlite: audit queue: %w", err)
			}
		}
		return nil
	})
	if moved != nil {
		q.takeOff(ctx, moved)
		return 0, err
	}
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	q.pending = q.pending[len(take):]
	for f, end := range ends {
		f.done = end
	}
	gone := q.settle()
	q.mu.Unlock()
	q.removeAll(ctx, gone)
	return len(leaves), nil
}

// doneOffsets reads every journal file's done offset, by name.
func doneOffsets(ctx context.Context, db queryer) (map[string]int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT name, done FROM audit_queue_files`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit queue: %w", err)
	}
	defer rows.Close()
	done := map[string]int64{}
	for rows.Next() {
		var name string
		var d int64
		if err := rows.Scan(&name, &d); err != nil {
			return nil, fmt.Errorf("sqlite: audit queue: %w", err)
		}
		done[name] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit queue: %w", err)
	}
	return done, nil
}

// doneOffset reads the done offset of journal file name in tx: the
// header's length if the file has no row yet.
func doneOffset(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	var done int64
	err := tx.QueryRowContext(ctx, `SELECT done FROM audit_queue_files WHERE name = ?`, name).Scan(&done)
	if errors.Is(err, sql.ErrNoRows) {
		return int64(len(journalMagic)), nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: audit queue: %w", err)
	}
	return done, nil
}

// Reconcile implements audit.HelpedQueue: it reads the journal files'
// done offsets and takes off the queue the entries another process has
// added to the tree.
func (q *QueuedAudit) Reconcile(ctx context.Context) (int, error) {
	q.imu.Lock()
	defer q.imu.Unlock()
	q.mu.Lock()
	look := q.hold > 0 && len(q.pending) > 0
	q.mu.Unlock()
	if look {
		done, err := doneOffsets(ctx, q.s.r)
		if err != nil {
			return 0, err
		}
		q.takeOff(ctx, done)
	}
	q.mu.Lock()
	n := q.helped
	q.helped = 0
	q.mu.Unlock()
	return n, nil
}

// takeOff takes off the queue the entries that the done offsets (by file
// name) say are in the tree, counting them for Reconcile.
func (q *QueuedAudit) takeOff(ctx context.Context, done map[string]int64) {
	q.mu.Lock()
	kept := q.pending[:0]
	for _, e := range q.pending {
		if d, ok := done[e.file.name]; ok && e.end <= d {
			q.helped += len(e.leaves)
			continue
		}
		kept = append(kept, e)
	}
	clear(q.pending[len(kept):]) // let the integrated leaves go
	q.pending = kept
	for name, d := range done {
		if f := q.files[name]; f != nil && d > f.done {
			f.done = d
		}
	}
	gone := q.settle()
	q.mu.Unlock()
	q.removeAll(ctx, gone)
}

// settle updates q.done from the queue, and picks the journal files to
// remove: a file taken over, once all in the tree; the current file once
// all in the tree and large enough, for a new one. Called with q.mu held.
func (q *QueuedAudit) settle() (gone []*journalFile) {
	if len(q.pending) == 0 {
		q.pending = nil // let the integrated leaves go
		q.done = q.written
	} else {
		q.done = q.pending[0].mark - int64(len(q.pending[0].leaves))
	}
	for _, f := range q.files {
		if f != q.cur && f.done >= f.size {
			gone = append(gone, f)
			delete(q.files, f.name)
		}
	}
	if q.cur != nil && q.err == nil && q.cur.done >= q.cur.size && q.cur.size > rotateSize {
		if next, err := q.create(); err == nil {
			gone = append(gone, q.cur)
			delete(q.files, q.cur.name)
			q.cur = next
			q.files[next.name] = next
		}
	}
	return gone
}

// removeAll removes the journal files settle picked; one it cannot is
// removed by the next open.
func (q *QueuedAudit) removeAll(ctx context.Context, gone []*journalFile) {
	for _, f := range gone {
		if err := q.remove(ctx, f); err != nil {
			return
		}
	}
}

// Due implements audit.HelpedQueue: the oldest queued record has waited
// for the helper longer than its hold (always, without a helper).
func (q *QueuedAudit) Due() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return false
	}
	return q.hold == 0 || time.Since(q.pending[0].at) >= q.hold
}
