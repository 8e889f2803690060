package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"latchkey/internal/indexer"
	"latchkey/internal/store/sqlite"
)

func auditIndexCmd() *cobra.Command {
	var data string
	var follow bool
	var every time.Duration
	var parent int
	var integrate time.Duration
	c := &cobra.Command{
		Use:   "index --data DIR [--follow [--every D]]",
		Short: "Bring the audit search index of a SQLite data directory up to date",
		Long: `Index, for "audit search", every audit record of the SQLite store in
DIR that is not indexed yet (serve may be running), showing progress on a
terminal, then print how many records the index holds. Deleting
DIR/latchkey-search.db and running this rebuilds the index.

serve runs this with --follow in a process of its own, at the lowest
processor and I/O priority, so that indexing takes only time the gateway
leaves; with --follow it indexes new records every --every until stopped.
That process also adds the records serve has journalled to the audit
log's Merkle tree, every 20ms, for the same reason; serve adds those it
leaves more than 200ms itself.
A search never misses a record because the index is behind: it brings the
index up to date first.

The PostgreSQL store keeps its index in the database: there is nothing to
run.`,
		Args: cobra.NoArgs,
	}
	f := c.Flags()
	f.StringVar(&data, "data", "", "data directory of the store")
	f.BoolVar(&follow, "follow", false, "keep indexing new records until stopped")
	f.DurationVar(&every, "every", time.Second, "with --follow: how often to index new records")
	f.IntVar(&parent, "background", 0, "run as serve's indexer: at the lowest priority, ending when process `PID` (its parent) does")
	_ = f.MarkHidden("background")
	f.DurationVar(&integrate, "integrate", 0, "with --follow: also add the journalled audit records to the tree every `D` (serve's audit helper)")
	_ = f.MarkHidden("integrate")
	_ = c.MarkFlagRequired("data")
	_ = c.MarkFlagDirname("data")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if every <= 0 {
			return usagef("--every must be positive, not %s", every)
		}
		db := filepath.Join(data, "latchkey.db")
		if _, err := os.Stat(db); err != nil {
			return usagef("--data %s: no store: %v", data, err)
		}
		ctx := cmd.Context()
		if parent != 0 {
			// Not idle when it writes serve's database (indexer.Lower).
			if err := indexer.Lower(integrate <= 0); err != nil {
				return err
			}
			ctx = indexer.WatchParent(ctx, parent)
			// Its live heap is small (the batch in hand), and its
			// collections were a fifth of its processor time, taken
			// from the machine the gateway runs on: collect four
			// times less often, for about 10 MiB more (peak RSS
			// in bench gateway 40 -> 50 MiB).
			debug.SetGCPercent(400)
		}
		if follow {
			if integrate <= 0 {
				return sqlite.IndexAudit(ctx, db, every, nil)
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			errs := make(chan error, 1)
			go func() {
				err := sqlite.FollowJournal(ctx, db, integrate)
				cancel() // ended early: exit, and serve restarts the helper
				errs <- err
			}()
			err := sqlite.IndexAudit(ctx, db, every, nil)
			cancel()
			return errors.Join(err, <-errs)
		}
		bar := newProgress(cmd.ErrOrStderr(), "indexed")
		var records int64
		err := sqlite.IndexAudit(ctx, db, 0, func(done, size int64) {
			records = done
			bar.update(done, max(size, done))
		})
		bar.done()
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "audit search index holds %d records\n", records)
		return nil
	}
	return c
}
