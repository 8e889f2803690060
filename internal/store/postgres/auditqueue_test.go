package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/audit/audittest"
	"latchkey/internal/store/postgres"
	"latchkey/internal/store/postgres/pgtest"
)

var _ access.FeedWatcher = (*postgres.Store)(nil)

// queueDSN is the database under each QueuedAudit of the suite.
var (
	queueMu  sync.Mutex
	queueDSN = map[audit.Queue]string{}
)

func TestQueuedAudit(t *testing.T) {
	for _, sync := range []postgres.Sync{postgres.SyncNormal, postgres.SyncFull} {
		t.Run(fmt.Sprint("sync=", sync), func(t *testing.T) {
			open := func(t *testing.T, dsn string) audit.Queue {
				q := openStore(t, dsn).QueuedAudit(sync)
				t.Cleanup(func() { q.Close() })
				queueMu.Lock()
				queueDSN[q] = dsn
				queueMu.Unlock()
				return q
			}
			dsnOf := func(q audit.Queue) string {
				queueMu.Lock()
				defer queueMu.Unlock()
				return queueDSN[q]
			}
			audittest.RunQueue(t,
				func(t *testing.T) audit.Queue { return open(t, pgtest.DSN(t)) },
				func(t *testing.T, q audit.Queue) audit.Queue {
					// A killed process: its sequencer lock goes with its
					// connection; the queue is in the database.
					q.(*postgres.QueuedAudit).Close()
					return open(t, dsnOf(q))
				},
				func(t *testing.T, q audit.Queue) audit.Queue { return open(t, dsnOf(q)) })
		})
	}
}

// TestQueuedAuditThreeProcesses: three processes' Logs append at once;
// one sequencer integrates for all. The first process dies halfway (its
// queue closed: its sequencer lock, if it held it, goes, as a dead
// process's connection would): the records it had acknowledged are
// integrated by another, and every record is in the tree once, at a
// dense index.
func TestQueuedAuditThreeProcesses(t *testing.T) {
	dsn := pgtest.DSN(t)
	var logs []*audit.Log
	var queues []*postgres.QueuedAudit
	for range 3 {
		q := openStore(t, dsn).QueuedAudit(postgres.SyncNormal)
		queues = append(queues, q)
		logs = append(logs, audit.New(q, audit.Config{IntegrateDelay: 5 * time.Millisecond}))
	}
	counts, bases := []int{150, 300, 300}, []int{0, 150, 450}
	var wg sync.WaitGroup
	for k, l := range logs {
		wg.Go(func() {
			for i := range counts[k] {
				if _, err := l.Append(context.Background(), audittest.Rec(bases[k]+i)); err != nil {
					t.Error(err)
					return
				}
			}
			if k == 0 {
				queues[0].Close() // dies
			}
		})
	}
	wg.Wait()
	if err := logs[2].Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	audittest.CheckAll(t, logs[2], 750)
	logs[1].Close()
	logs[2].Close()
}

// TestWatchInvalidations: a revocation committed through one store is
// announced to a watcher on another within the test's patience, and the
// watcher's channel closes when its context ends.
func TestWatchInvalidations(t *testing.T) {
	a, b := twoStores(t)
	ctx, cancel := context.WithCancel(t.Context())
	ch := b.WatchInvalidations(ctx)
	select { // the first value: listening (whatever came before)
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no first wake-up within 10s")
	}
	createToken(t, a, "tok_watch", 0)
	if err := a.RevokeToken(t.Context(), "tok_watch", "admin", "revoked", t0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification of the revocation within 10s")
	}
	cancel()
	for range ch { // drains, then ends: closed
	}
}
