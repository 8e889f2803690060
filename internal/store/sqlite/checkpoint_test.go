package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/sqlite"
)

// TestWALBounded: with no checkpoint inside commits, the checkpointer
// goroutine must keep the WAL file from growing with the log. The WAL
// written by the first 100 one-record commits (before the first
// checkpoint) gives the growth per commit; over 20,000 commits the file
// must stay well under what they wrote.
func TestWALBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MiB")
	}
	path := filepath.Join(t.TempDir(), "latchkey.db")
	s := openStore(t, path)
	l := audit.New(s.Audit(sqlite.SyncNormal), audit.Config{})
	defer l.Close()
	const n = 20000
	var largest, first int64
	for i := range n {
		if _, err := l.Append(context.Background(), audittest.Rec(i)); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, fi.Size())
		if i == 99 {
			first = fi.Size()
		}
	}
	written := first * n / 100
	if largest > written/2 {
		t.Fatalf("WAL grew to %d MiB of the %d MiB written: checkpoints are not keeping it short", largest>>20, written>>20)
	}
	t.Logf("largest WAL: %.1f MiB of %.1f MiB written", float64(largest)/(1<<20), float64(written)/(1<<20))
}
