package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/sqlite"
)

// helped opens a store at a new path whose QueuedAudit leaves records to
// an audit helper for hold, and a Log on that queue.
func helped(t *testing.T, hold time.Duration) (*audit.Log, *sqlite.QueuedAudit, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	l, q := helpedAt(t, path, hold)
	return l, q, path
}

// helpedAt is helped on the store at path: one more serving process.
func helpedAt(t *testing.T, path string, hold time.Duration) (*audit.Log, *sqlite.QueuedAudit) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), path, sqlite.AuditHelper(hold))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := st.QueuedAudit(t.Context(), sqlite.SyncNormal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	l := audit.New(q, audit.Config{IntegrateDelay: 2 * time.Millisecond})
	t.Cleanup(func() { l.Close() })
	return l, q
}

// follow runs FollowJournal on path until the test ends.
func follow(t *testing.T, path string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sqlite.FollowJournal(ctx, path, 2*time.Millisecond) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("FollowJournal: %v", err)
		}
	})
}

// waitPending waits (at most 10 s) until l has no record pending.
func waitPending(t *testing.T, l *audit.Log) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); l.Pending() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d records still pending after 10s", l.Pending())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAuditHelperIntegrates: with a hold of an hour, only the helper can
// add the records to the tree; the Log takes them off its queue.
func TestAuditHelperIntegrates(t *testing.T) {
	l, _, path := helped(t, time.Hour)
	follow(t, path)
	audittest.AppendConcurrently(t, l, 16, 25)
	waitPending(t, l)
	audittest.CheckAll(t, l, 16*25)
}

// TestAuditHelperAbsent: without a helper, the Log integrates the
// records itself once they are held too long, with no reader waiting.
func TestAuditHelperAbsent(t *testing.T) {
	l, _, _ := helped(t, 30*time.Millisecond)
	audittest.AppendConcurrently(t, l, 8, 10)
	waitPending(t, l)
	audittest.CheckAll(t, l, 80)
}

// TestAuditHelperRace: the Log integrates everything at once (a hold of
// a nanosecond) while the helper does too, on the same records: every
// record reaches the tree exactly once, and no Append fails.
func TestAuditHelperRace(t *testing.T) {
	l, _, path := helped(t, time.Nanosecond)
	follow(t, path)
	follow(t, path) // two helpers, as two serve processes would have
	audittest.AppendConcurrently(t, l, 32, 40)
	waitPending(t, l)
	audittest.CheckAll(t, l, 32*40)
}

// TestAuditHelperSync: a reader waiting in Sync does not wait for the
// hold: the Log integrates at once.
func TestAuditHelperSync(t *testing.T) {
	l, _, _ := helped(t, time.Hour)
	if _, err := l.Append(t.Context(), audittest.Rec(0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	audittest.CheckAll(t, l, 1)
}

// TestAuditHelperClose: Close integrates what the helper has not, and
// the next open finds nothing queued.
func TestAuditHelperClose(t *testing.T) {
	l, q, path := helped(t, time.Hour)
	audittest.AppendConcurrently(t, l, 4, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	q.Close()
	st := openStore(t, path)
	l2 := audit.New(st.Audit(sqlite.SyncNormal), audit.Config{})
	defer l2.Close()
	audittest.CheckAll(t, l2, 20)
}

// TestAuditHelperRotation: the journal file is replaced once all in the
// tree and large, also when the helper put it there.
func TestAuditHelperRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 16 MiB of journal")
	}
	l, _, path := helped(t, time.Hour)
	follow(t, path)
	recs := make([]audit.Record, 64)
	for i := range recs {
		recs[i] = audittest.Rec(i)
		recs[i].Reason = strings.Repeat("r", 4000)
	}
	n := 0
	for range 70 { // 70 x 64 x 4 KB: past the 16 MiB of a journal file
		if _, err := l.Append(t.Context(), recs...); err != nil {
			t.Fatal(err)
		}
		n += len(recs)
	}
	waitPending(t, l)
	// One more: the queue settles (and rotates) as it takes records off.
	if _, err := l.Append(t.Context(), audittest.Rec(0)); err != nil {
		t.Fatal(err)
	}
	waitPending(t, l)
	dir := filepath.Join(filepath.Dir(path), "latchkey-auditq")
	files, _ := filepath.Glob(filepath.Join(dir, "*.lkq"))
	var total int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			total += fi.Size()
		}
	}
	if total > 16<<20 {
		t.Errorf("journal files hold %d bytes after everything is in the tree: %v", total, files)
	}
	if size, _, err := l.Verify(t.Context(), nil); err != nil || size != int64(n+1) {
		t.Fatalf("Verify = %d, %v; want %d", size, err, n+1)
	}
}

// TestReadEntries: the helper reads only complete entries, and from
// where the done offset says.
func TestReadEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.lkq")
	b := []byte("LKAUDQ1\n")
	b = sqlite.AppendEntry(b, audittest.Leaves(0, 2))
	second := int64(len(b))
	b = sqlite.AppendEntry(b, audittest.Leaves(2, 3))
	full := int64(len(b))
	b = sqlite.AppendEntry(b, audittest.Leaves(5, 1))
	for _, tt := range []struct {
		name      string
		size      int64 // bytes of b in the file
		from      int64
		max       int
		wantN     int
		wantEnd   int64
		wantError bool
	}{
		{"all complete", full, 8, 100, 5, full, false},
		{"torn third", int64(len(b)) - 3, 8, 100, 5, full, false},
		{"from the second", full, second, 100, 3, full, false},
		{"max stops between entries", full, 8, 3, 2, second, false},
		{"first entry past max still whole", full, second, 1, 3, full, false},
		{"nothing new", full, full, 100, 0, full, false},
		{"header only", 8, 8, 100, 0, 8, false},
		{"not a journal", 0, 8, 100, 0, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := b[:tt.size]
			if tt.wantError {
				data = []byte("garbage!" + string(b[8:full]))
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			leaves, end, err := sqlite.ReadEntries(path, tt.from, tt.max)
			if tt.wantError {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil || len(leaves) != tt.wantN || end != tt.wantEnd {
				t.Fatalf("ReadEntries = %d leaves, end %d, %v; want %d, %d", len(leaves), end, err, tt.wantN, tt.wantEnd)
			}
		})
	}
}

// TestAuditHelperCheckpointIntegrated: the periodic checkpoint signs the
// tree as stored and leaves the records held for the helper where they
// are (Integrated, CheckpointIntegrated); an asked-for checkpoint waits
// for every record appended (Checkpoint).
func TestAuditHelperCheckpointIntegrated(t *testing.T) {
	l, _, _ := helped(t, time.Hour)
	dir := t.TempDir()
	if err := audit.GenerateKey(dir, "latchkey.test/audit"); err != nil {
		t.Fatal(err)
	}
	signer, err := audit.LoadSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	size := func(cp []byte, err error) int64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		c, err := audit.ParseSigned(cp)
		if err != nil {
			t.Fatal(err)
		}
		return c.Size
	}
	for i := range 3 {
		if _, err := l.Append(t.Context(), audittest.Rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := size(l.CheckpointIntegrated(t.Context(), signer)); n != 0 {
		t.Errorf("CheckpointIntegrated: size %d, want 0 (the records are held for the helper)", n)
	}
	if n, err := l.Integrated(t.Context()); err != nil || n != 0 {
		t.Errorf("Integrated: %d, %v; want 0", n, err)
	}
	if p := l.Pending(); p != 3 {
		t.Errorf("%d records pending after CheckpointIntegrated, want 3 still held", p)
	}
	if n := size(l.Checkpoint(t.Context(), signer)); n != 3 {
		t.Errorf("Checkpoint: size %d, want 3", n)
	}
	if n, err := l.Integrated(t.Context()); err != nil || n != 3 {
		t.Errorf("Integrated after Checkpoint: %d, %v; want 3", n, err)
	}
	audittest.CheckAll(t, l, 3)
}

// TestAuditHelperIdleLooks: the helper looks at the journals every
// IntegrateDelay for the life of the server, busy or idle. Once it has
// integrated everything, its looks read nothing from the store until a
// journal grows; a journal file that appears later (a second serving
// process's) is found and followed too.
func TestAuditHelperIdleLooks(t *testing.T) {
	l, _, path := helped(t, time.Hour)
	fq, counts, closeFollower := sqlite.NewFollower(openStore(t, path))
	fl := audit.New(fq, audit.Config{IntegrateDelay: time.Millisecond, MaxBatch: 512})
	t.Cleanup(func() {
		fl.Close()
		closeFollower()
	})
	audittest.AppendConcurrently(t, l, 4, 10)
	waitPending(t, l)
	waitLooks := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if looks, _ := counts(); looks >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the helper did not look %d times in 10s", n)
			}
		}
	}
	looks, reads := counts()
	waitLooks(looks + 100)
	if _, r := counts(); r != reads {
		t.Fatalf("the idle helper read %d done offsets in 100 looks, want 0", r-reads)
	}

	l2, _ := helpedAt(t, path, time.Hour)
	for i := 40; i < 45; i++ {
		if _, err := l2.Append(t.Context(), audittest.Rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitPending(t, l2)
	if _, r := counts(); r == reads {
		t.Fatal("the helper integrated the second journal without reading its done offset")
	}
	audittest.CheckAll(t, l, 45)
}

// TestAuditHelperRemovedJournal: a journal file the helper holds open
// may be removed whole, with its done offset's row, by a serving process
// (here the next one to open the store, taking over a dead one's files)
// before the helper lists the directory again. The helper must not take
// the missing row for a new file and add its records to the tree a
// second time.
func TestAuditHelperRemovedJournal(t *testing.T) {
	l, q, path := helped(t, time.Hour)
	dir := filepath.Join(filepath.Dir(path), "latchkey-auditq")
	// An old directory mtime, which the helper trusts for a second
	// after each listing: set back after the removal, it hides it.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	fq, counts, closeFollower := sqlite.NewFollower(openStore(t, path))
	t.Cleanup(closeFollower)
	looking := func() *audit.Log {
		t.Helper()
		fl := audit.New(fq, audit.Config{IntegrateDelay: time.Millisecond, MaxBatch: 512})
		looks, _ := counts()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if n, _ := counts(); n >= looks+5 {
				return fl
			}
			if time.Now().After(deadline) {
				t.Fatal("the helper did not look 5 times in 10s")
			}
		}
	}
	fl := looking() // it opens the journal file, empty
	fl.Close()
	for i := range 10 {
		if _, err := l.Append(t.Context(), audittest.Rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close() // integrates the 10 itself
	q.Close()
	l2, _ := helpedAt(t, path, time.Hour) // removes the file and its row
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	fl = looking()
	defer fl.Close()
	audittest.CheckAll(t, l2, 10)
}
