package server

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"latchkey/internal/audit"
)

// checkpoints returns the signed checkpoints in dir, oldest first.
func checkpoints(t *testing.T, dir string) []audit.Checkpoint {
	t.Helper()
	v, err := audit.LoadVerifier(filepath.Join(dir, audit.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, checkpointDir))
	var out []audit.Checkpoint
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a checkpoint being written
		}
		b, err := os.ReadFile(filepath.Join(dir, checkpointDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := audit.OpenCheckpoint(b, v)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		out = append(out, cp)
	}
	return out
}

// TestCheckpointsWritten: while the log grows, serve signs checkpoints
// into DATA/checkpoints and --checkpoint-dir, each verifying with
// audit.pub; it signs none while the log does not grow.
func TestCheckpointsWritten(t *testing.T) {
	dir := newDir(t)
	shipped := t.TempDir()
	cfg := testConfig(dir, &syncBuffer{})
	cfg.CheckpointDir, cfg.CheckpointEvery = shipped, 20*time.Millisecond
	r := start(t, cfg)
	tok := adminToken(t, r.stdout.String())
	if status, _ := whoami(t, r.url, tok); status != 200 {
		t.Fatalf("whoami: %d", status)
	}
	poll(t, func() string {
		if n := len(checkpoints(t, dir)); n == 0 {
			return "no checkpoint written"
		}
		return ""
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	cps := checkpoints(t, dir)
	sizes := make([]int64, len(cps))
	for i, cp := range cps {
		sizes[i] = cp.Size
	}
	if !slices.IsSorted(sizes) || len(slices.Compact(slices.Clone(sizes))) != len(sizes) {
		t.Fatalf("checkpoint sizes %v: want strictly growing, one per growth", sizes)
	}
	// init's token issue plus the whoami read: at least 2 records.
	if last := cps[len(cps)-1]; last.Size < 2 {
		t.Fatalf("last checkpoint covers %d records", last.Size)
	}
	a, _ := os.ReadDir(filepath.Join(dir, checkpointDir))
	b, _ := os.ReadDir(shipped)
	if len(a) != len(b) {
		t.Fatalf("%d checkpoints in the data directory, %d shipped", len(a), len(b))
	}
	if fi, err := os.Stat(filepath.Join(dir, audit.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit.key: %v, %v", fi, err)
	}
}

// TestLatestCheckpoint: before this process signs one, the latest
// checkpoint is the largest in DATA/checkpoints, dated by its file,
// skipping checkpoints being written; none if there is no other.
func TestLatestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	c := &checkpointer{dirs: []string{dir}, last: -1}
	if err := os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, at, err := c.latest(t.Context()); b != nil || !at.IsZero() || err != nil {
		t.Fatalf("latest of a directory with only a checkpoint being written: %q, %v, %v", b, at, err)
	}
	when := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for name, text := range map[string]string{"000000000003": "three", "000000000010": "ten"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	b, at, err := c.latest(t.Context())
	if string(b) != "ten" || !at.Equal(when) || err != nil {
		t.Fatalf("latest: %q, %v, %v; want ten, %v", b, at, err, when)
	}
}
