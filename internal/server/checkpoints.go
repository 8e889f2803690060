package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"latchkey/internal/audit"
)

// DefaultCheckpointEvery is how often serve signs a checkpoint while the
// audit log grows, when Config.CheckpointEvery is zero.
const DefaultCheckpointEvery = 5 * time.Second

// checkpointDir is where serve writes every signed checkpoint, one file
// each, named by tree size (12 digits; files starting with "." are
// checkpoints being written, to be ignored): a history the operator cannot silently fork,
// to be shipped elsewhere (and also written to Config.CheckpointDir).
const checkpointDir = "checkpoints"

// ensureAuditKey creates the checkpoint signing key in dataDir if it has
// none. The log's origin (its name in every checkpoint) is unique per
// data directory.
func ensureAuditKey(dataDir string) error {
	_, err := os.Stat(filepath.Join(dataDir, audit.KeyFile))
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	return audit.GenerateKey(dataDir, "latchkey-audit-"+hex.EncodeToString(b[:]))
}

// checkpointer signs checkpoints of a log and writes them out.
type checkpointer struct {
	mu     sync.Mutex // one signing at a time: the loop and on-demand requests
	log    *audit.Log
	signer *audit.Signer
	dirs   []string // destinations, each gets every checkpoint
	app    *slog.Logger
	last   int64     // size of the last checkpoint written, -1 before any
	lastCP []byte    // the last checkpoint written by this process, nil before any
	lastAt time.Time // when it was signed
}

// sign writes a checkpoint of the log as it is now, every record
// appended so far in the tree, if it grew since the last one (or always,
// if force).
func (c *checkpointer) sign(ctx context.Context, force bool) ([]byte, error) {
	if err := c.log.Sync(ctx); err != nil {
		return nil, err
	}
	return c.signIntegrated(ctx, force)
}

// signIntegrated is sign of the tree as stored, without waiting for the
// records still queued: the periodic checkpoint, which would otherwise
// make serve integrate at once what it leaves to its audit helper.
func (c *checkpointer) signIntegrated(ctx context.Context, force bool) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	size, err := c.log.Integrated(ctx)
	if err != nil {
		return nil, err
	}
	if size == c.last && !force {
		return nil, nil
	}
	cp, err := c.log.CheckpointIntegrated(ctx, c.signer)
	if err != nil {
		return nil, err
	}
	parsed, err := audit.ParseSigned(cp)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%012d", parsed.Size)
	for _, dir := range c.dirs {
		if err := writeFileAtomic(filepath.Join(dir, name), cp); err != nil {
			return nil, err
		}
	}
	c.last, c.lastCP, c.lastAt = parsed.Size, cp, time.Now()
	return cp, nil
}

// latest returns the latest signed checkpoint and when it was signed: the
// last one this process wrote or, before any, the largest in the data
// directory's checkpoints (its time the file's). It returns nil if there
// is none.
func (c *checkpointer) latest(ctx context.Context) ([]byte, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastCP != nil {
		return c.lastCP, c.lastAt, nil
	}
	ents, err := os.ReadDir(c.dirs[0])
	if err != nil {
		return nil, time.Time{}, err
	}
	for i := len(ents) - 1; i >= 0; i-- {
		e := ents[i]
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, time.Time{}, err
		}
		b, err := os.ReadFile(filepath.Join(c.dirs[0], e.Name()))
		return b, info.ModTime(), err
	}
	return nil, time.Time{}, nil
}

// loop signs a checkpoint of the stored tree every interval while it
// grows, and a last one of every record when ctx ends.
func (c *checkpointer) loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if _, err := c.sign(context.Background(), false); err != nil {
				c.app.Error("final audit checkpoint failed", "err", err)
			}
			return
		case <-t.C:
			if _, err := c.signIntegrated(ctx, false); err != nil {
				c.app.Error("audit checkpoint failed", "err", err)
			}
		}
	}
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so a reader never sees half a checkpoint.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err2 := tmp.Sync(); err == nil {
		err = err2
	}
	if err2 := tmp.Close(); err == nil {
		err = err2
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// newCheckpointer loads the signing key and prepares the destinations.
func newCheckpointer(cfg Config, in *instance) (*checkpointer, error) {
	signer, err := audit.LoadSigner(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	dirs := []string{filepath.Join(cfg.DataDir, checkpointDir)}
	if cfg.CheckpointDir != "" {
		dirs = append(dirs, cfg.CheckpointDir)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("checkpoint directory: %w", err)
		}
		// A kill during writeFileAtomic leaves its temporary file behind.
		stale, _ := filepath.Glob(filepath.Join(d, ".tmp-*"))
		for _, f := range stale {
			os.Remove(f)
		}
	}
	return &checkpointer{log: in.audit, signer: signer, dirs: dirs, app: cfg.Log, last: -1}, nil
}
