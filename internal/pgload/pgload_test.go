package pgload

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"latchkey/internal/store/postgres/pgtest"
)

// TestRun runs the whole benchmark, briefly, on the server pgtest
// provides, with a bare relay to that server as the reference target:
// every workload against every target, each with a rate.
func TestRun(t *testing.T) {
	server := pgtest.DSN(t) // skips without a server; Run makes its own database
	ref := relayTo(t, server)
	var progress strings.Builder
	cfg := Config{DSN: server, Clients: 2, Jobs: 1, Duration: time.Second, Rounds: 1, Scale: 1,
		Reference: ref, Progress: &progress}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reference != ref {
		t.Errorf("Report.Reference = %q, want %q", rep.Reference, ref)
	}
	targets := []string{TargetDirect, TargetRelay, TargetGateway, TargetAuditOff, TargetRef}
	if len(rep.Results) != 2*len(targets) {
		t.Fatalf("%d results, want %d: %+v", len(rep.Results), 2*len(targets), rep.Results)
	}
	for i, r := range rep.Results {
		wl := WorkloadSelect
		if i >= len(targets) {
			wl = WorkloadTPCB
		}
		if r.Workload != wl || r.Target != targets[i%len(targets)] {
			t.Errorf("result %d is %s %s, want %s %s", i, r.Workload, r.Target, wl, targets[i%len(targets)])
		}
		if r.TPS <= 0 || len(r.Rounds) != 1 || r.XDirect <= 0 {
			t.Errorf("%s %s: tps %v, rounds %v, x direct %v: want a rate", r.Workload, r.Target, r.TPS, r.Rounds, r.XDirect)
		}
		if r.Target == TargetDirect && r.XDirect != 1 {
			t.Errorf("%s direct: x direct %v, want 1", r.Workload, r.XDirect)
		}
	}
	if n := strings.Count(progress.String(), " tps\n"); n != 2*len(targets) {
		t.Errorf("%d progress lines of a run, want %d:\n%s", n, 2*len(targets), progress.String())
	}
}

// TestRunReferenceDown: a reference target nobody listens on fails the
// run with an error naming it, and the run's database is dropped all the
// same (pgtest's cleanup drops only its own).
func TestRunReferenceDown(t *testing.T) {
	server := pgtest.DSN(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	before := benchDatabases(t, server)
	cfg := Config{DSN: server, Clients: 1, Jobs: 1, Duration: time.Second, Rounds: 1, Scale: 1, Reference: dead}
	_, err = Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), TargetRef) {
		t.Fatalf("Run with a dead reference = %v, want an error naming %q", err, TargetRef)
	}
	if after := benchDatabases(t, server); after != before {
		t.Errorf("lkbench_ databases: %s before the run, %s after", before, after)
	}
}

// benchDatabases lists the databases Run creates on the server of dsn.
func benchDatabases(t *testing.T, dsn string) string {
	t.Helper()
	c, err := pgconn.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	res, err := c.Exec(context.Background(), "SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') FROM pg_database WHERE datname LIKE 'lkbench\\_%'").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return string(res[0].Rows[0][0])
}

// relayTo starts a bare relay to the server of dsn, as a stand-in for a
// proxy such as PgBouncer, and returns its address.
func relayTo(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	ln, err := startRelay(net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}
