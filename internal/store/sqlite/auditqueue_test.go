package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/sqlite"
)

// queuedStore is the Store under a QueuedAudit of the suite.
var queuedStore = map[audit.Queue]*sqlite.Store{}

func TestQueuedAudit(t *testing.T) {
	for _, tc := range []struct {
		sync sqlite.Sync
		hold time.Duration // sqlite.AuditHelper, with no helper running
	}{{sqlite.SyncNormal, 0}, {sqlite.SyncFull, 0}, {sqlite.SyncNormal, 50 * time.Millisecond}} {
		sync := tc.sync
		openStore := func(t testing.TB, path string) *sqlite.Store {
			s, err := sqlite.Open(context.Background(), path, sqlite.AuditHelper(tc.hold))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		t.Run(fmt.Sprint("sync=", sync, ",hold=", tc.hold), func(t *testing.T) {
			open := func(t *testing.T, st *sqlite.Store) audit.Queue {
				q, err := st.QueuedAudit(context.Background(), sync)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { q.Close() })
				queuedStore[q] = st
				return q
			}
			audittest.RunQueue(t,
				func(t *testing.T) audit.Queue {
					return open(t, openStore(t, filepath.Join(t.TempDir(), "latchkey.db")))
				},
				func(t *testing.T, q audit.Queue) audit.Queue {
					// What the kernel does to a killed process's files.
					q.(*sqlite.QueuedAudit).Close()
					return open(t, queuedStore[q])
				},
				func(t *testing.T, q audit.Queue) audit.Queue {
					// Another process: its own Store on the same file.
					return open(t, openStore(t, sqlite.PathOf(queuedStore[q])))
				})
		})
	}
}

// TestQueuedAuditTornTail: an entry cut short (a write that never
// completed, so was never acknowledged) or a trailing garbage byte ends
// the journal; the entries before it are recovered.
func TestQueuedAuditTornTail(t *testing.T) {
	for _, cut := range []int{1, 7, 30} {
		t.Run(fmt.Sprint("cut=", cut), func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "latchkey.db")
			st := openStore(t, path)
			q, err := st.QueuedAudit(ctx, sqlite.SyncNormal)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if _, err := q.Enqueue(ctx, audittest.Leaves(i, 1)); err != nil {
					t.Fatal(err)
				}
			}
			q.Close()
			files, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "latchkey-auditq", "*.lkq"))
			if len(files) != 1 {
				t.Fatalf("journal files: %v", files)
			}
			fi, err := os.Stat(files[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(files[0], fi.Size()-int64(cut)); err != nil {
				t.Fatal(err)
			}
			q2, err := st.QueuedAudit(ctx, sqlite.SyncNormal)
			if err != nil {
				t.Fatal(err)
			}
			l := audit.New(q2, audit.Config{})
			if _, err := l.Append(ctx, audittest.Rec(2)); err != nil {
				t.Fatal(err)
			}
			audittest.CheckAll(t, l, 3)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			q2.Close()
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "latchkey-auditq", "*.lkq"))
			if len(left) != 1 {
				t.Errorf("journal files after recovery: %v, want only the new one", left)
			}
		})
	}
}

func FuzzJournalEntry(f *testing.F) {
	f.Add(sqlite.AppendEntry(nil, audittest.Leaves(0, 2)))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		leaves, n, err := sqlite.ParseEntry(b)
		if err != nil {
			return
		}
		if n > len(b) || len(leaves) == 0 {
			t.Fatalf("ParseEntry = %d leaves, %d bytes of %d", len(leaves), n, len(b))
		}
		for _, l := range leaves {
			if len(l) > audit.MaxLeafSize {
				t.Fatalf("a leaf of %d bytes", len(l))
			}
		}
		again := sqlite.AppendEntry(nil, leaves)
		if string(again) != string(b[:n]) {
			t.Fatalf("re-encoding differs: %x vs %x", again, b[:n])
		}
	})
}
