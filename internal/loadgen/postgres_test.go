package loadgen

import (
	"context"
	"testing"
	"time"

	"latchkey/internal/store/postgres/pgtest"
)

// TestRunPostgres runs a short load on a PostgreSQL store, in a scratch
// database of its own on a server pgtest provides, and checks that no
// request failed.
func TestRunPostgres(t *testing.T) {
	server := pgtest.DSN(t) // skips without a server; Run makes its own database
	cfg := Config{Conns: 4, Duration: 200 * time.Millisecond, Rounds: 1, Tokens: 20, Dir: t.TempDir(), Store: server}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Errors(); n > 0 {
		t.Fatalf("%d requests failed", n)
	}
}
