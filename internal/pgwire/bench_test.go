package pgwire_test

import (
	"context"
	"path/filepath"
	"testing"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/pgwire"
	"latchkey/internal/seal"
	"latchkey/internal/store/sqlite"
)

// BenchmarkStatementAudit is the audit append every statement waits for
// before it is forwarded: a db.statement record through the real audit log
// on SQLite, from 8 sessions at once, as serve has it (queued: one journal
// write per batch, the tree behind) and committed (each batch waits for
// its tree transaction). Its ns/op bounds the gateway's statements per
// second: 1e9 / ns/op.
func BenchmarkStatementAudit(b *testing.B) {
	for _, queued := range []bool{true, false} {
		name := "committed"
		if queued {
			name = "queued"
		}
		b.Run(name, func(b *testing.B) { benchStatementAudit(b, queued) })
	}
}

func benchStatementAudit(b *testing.B, queued bool) {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "latchkey.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	key, _ := seal.LoadOrCreateKey(filepath.Join(dir, "seal.key"))
	box, _ := seal.New(key)
	var storage audit.Storage = st.Audit(sqlite.SyncNormal)
	if queued {
		q, err := st.QueuedAudit(ctx, sqlite.SyncNormal)
		if err != nil {
			b.Fatal(err)
		}
		defer q.Close()
		storage = q
	}
	log := audit.New(storage, audit.Config{})
	defer log.Close()
	a, err := access.New(access.Config{Store: st, Box: box, Audit: log})
	if err != nil {
		b.Fatal(err)
	}
	ev := access.DatabaseEvent{Action: pgwire.ActionStatement, TokenID: "0123456789AB", Contractor: "alice", Service: "pg",
		Method: pgwire.KindQuery, Path: "/app", Source: "127.0.0.1", Decision: audit.Allow,
		Reason: "sql_sha256=e004ebd5b5532a4b85984a62f8ad48a81aa3460c1ca07701f386135d72cdecf5 params=0 sql=SELECT abalance FROM pgbench_accounts WHERE aid = 4242;"}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := a.RecordDatabaseEvent(ctx, ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
