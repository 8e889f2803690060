package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"latchkey/internal/audit"
	"latchkey/internal/seal"
	"latchkey/internal/store"
	"latchkey/internal/store/postgres"
	"latchkey/internal/store/sqlite"
)

// AuditStorage is what the server and audit verify need of a storage
// engine's audit log storage: the log, its search, and the check of the
// search index against the log.
type AuditStorage interface {
	audit.Storage
	audit.Searcher
	// CheckSearchColumns checks the search index of the first size
	// records against their leaves, returning a *audit.VerifyError for
	// the first record it hides or misstates.
	CheckSearchColumns(ctx context.Context, size int64) error
	// Close releases what the storage holds besides the store (a
	// journal file); call it after the Log on it is closed.
	Close() error
}

// OpenStore opens the store of a data directory and its audit log
// storage, appending with durability auditSync ("", "normal" or "full"):
// the SQLite database in dataDir, or, if dsn is set, the PostgreSQL
// database it names (the data directory then holds only the keys, which
// every process sharing that database must have copies of). The storage
// is the engine's audit.Queue (records acknowledged once queued, added to
// the tree behind); close it after the Log on it, then the store. opts
// apply to a SQLite store.
func OpenStore(ctx context.Context, dataDir, dsn, auditSync string, opts ...sqlite.Option) (store.Store, AuditStorage, error) {
	full, err := parseAuditSync(auditSync)
	if err != nil {
		return nil, nil, err
	}
	if dsn != "" {
		st, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, nil, err
		}
		sync := postgres.SyncNormal
		if full {
			sync = postgres.SyncFull
		}
		return st, st.QueuedAudit(sync), nil
	}
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, dbFile), opts...)
	if err != nil {
		return nil, nil, err
	}
	sync := sqlite.SyncNormal
	if full {
		sync = sqlite.SyncFull
	}
	q, err := st.QueuedAudit(ctx, sync)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, q, nil
}

// parseAuditSync reports whether s asks for full audit durability.
func parseAuditSync(s string) (full bool, err error) {
	switch s {
	case "", "normal":
		return false, nil
	case "full":
		return true, nil
	}
	return false, fmt.Errorf("invalid audit sync %q: want normal or full", s)
}

// initClaim is the store claim (store.Store.Claim) taken by the process
// that initialises a shared store, so that of replicas starting at once
// on an empty database one issues the first admin token. A claim older
// than initStale is taken over: its taker died before finishing.
const (
	initClaim = "server.init"
	initStale = time.Minute
)

// errInitializing: another process claimed the initialisation of the
// shared store less than initStale ago and has not finished it.
var errInitializing = errors.New("another process is initializing the store")

// sharedInitialized reports whether the PostgreSQL store of cfg is
// initialized (holds an admin token). If it is not, this process has
// claimed its initialisation, or it fails with errInitializing.
func sharedInitialized(ctx context.Context, cfg Config) (bool, error) {
	st, storage, err := OpenStore(ctx, cfg.DataDir, cfg.Store, "")
	if err != nil {
		return false, err
	}
	defer st.Close()
	defer storage.Close()
	admin := true
	ts, err := st.Tokens(ctx, store.TokenFilter{Admin: &admin})
	if err != nil {
		return false, err
	}
	if len(ts) > 0 {
		return true, nil
	}
	holder, _ := os.Hostname()
	holder = fmt.Sprintf("%s/%d", holder, os.Getpid())
	now := time.Now()
	got, err := st.Claim(ctx, initClaim, holder, now, now.Add(-initStale))
	if err == nil && !got {
		err = fmt.Errorf("%s: %w (for up to %v); start this one again once it has printed the first admin token",
			postgres.Redact(cfg.Store), errInitializing, initStale)
	}
	return false, err
}

// requireKeys refuses to serve a shared store from a data directory
// without its keys: new ones would seal credentials no other replica can
// open, and sign checkpoints with another key.
func requireKeys(cfg Config) error {
	for _, name := range []string{keyFile, audit.KeyFile, audit.PubFile} {
		_, err := os.Stat(filepath.Join(cfg.DataDir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("the store %s is already initialized, but data directory %s has no %s: "+
				"copy %s, %s and %s from the data directory of a process sharing the store",
				postgres.Redact(cfg.Store), cfg.DataDir, name, keyFile, audit.KeyFile, audit.PubFile)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// loadBox loads (creating it if needed) the sealing key of dataDir.
func loadBox(dataDir string) (*seal.Box, error) {
	key, err := seal.LoadOrCreateKey(filepath.Join(dataDir, keyFile))
	if err != nil {
		return nil, err
	}
	return seal.New(key)
}
