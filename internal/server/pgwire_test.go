package server

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/pgwire/pgwiretest"
)

// TestServePostgres: with PGAddr, serve runs the PostgreSQL gateway and
// writes its address to postgres.url; a postgres service registered
// through the admin API is reached with psql, each statement is found by
// audit search (by contractor, token and service), and a revoked token's
// live session ends.
func TestServePostgres(t *testing.T) {
	db := pgwiretest.New(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("no psql")
	}
	dir := newDir(t)
	cfg := testConfig(dir, &syncBuffer{})
	cfg.PGAddr = "127.0.0.1:0"
	r := start(t, cfg)
	ctx := t.Context()
	_, iss := onboard(t, r, adminapi.NewService{Name: "pg", Upstream: db.Upstream(), DatabaseLogins: &access.DatabaseLogins{
		Read:  access.DatabaseLogin{User: db.ReadUser, Password: db.ReadPassword},
		Write: access.DatabaseLogin{User: db.WriteUser, Password: db.WritePassword},
	}}, "pg:*:/**", "pg:read:/"+db.Name)
	if !strings.Contains(r.stdout.String(), "latchkey: postgres gateway listening on postgres://127.0.0.1:") {
		t.Fatalf("serve did not print the postgres gateway's address:\n%s", r.stdout)
	}
	b, err := os.ReadFile(filepath.Join(dir, pgFile))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(strings.TrimSpace(string(b)))
	if err != nil || u.Scheme != "postgres" {
		t.Fatalf("postgres.url: %q %v", b, err)
	}
	psqlCmd := func(ctx context.Context, sql string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, psql, "-X", "-A", "-t", "-h", u.Hostname(), "-p", u.Port(), "-U", "alice", "-d", "pg/"+db.Name, "-c", sql)
		cmd.Env = []string{"PGPASSWORD=" + iss.Token, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10"}
		return cmd
	}
	out, err := psqlCmd(ctx, "SELECT current_user").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != db.ReadUser {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	cl := &adminapi.Client{Addr: r.url, Token: adminToken(t, r.stdout.String())}
	for _, q := range []adminapi.AuditQuery{{Contractor: "alice"}, {Token: iss.ID}, {Service: "pg"}} {
		q.Action = "db.statement"
		page, err := cl.AuditSearch(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != 1 || !strings.HasSuffix(page.Records[0].Reason, " sql=SELECT current_user") {
			t.Fatalf("audit search %+v: %+v", q, page.Records)
		}
	}
	// A live session ends when its token is revoked.
	long := psqlCmd(ctx, "SELECT pg_sleep(60)")
	var output strings.Builder
	long.Stdout, long.Stderr = &output, &output
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	poll(t, func() string {
		page, err := cl.AuditSearch(ctx, adminapi.AuditQuery{Token: iss.ID, Action: "db.statement"})
		if err != nil || len(page.Records) < 2 {
			return "the sleep has not started"
		}
		return ""
	})
	if _, err := cl.RevokeToken(ctx, iss.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- long.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(output.String(), "FATAL:  latchkey: token_revoked") {
			t.Fatalf("psql after revoke: %v\n%s", err, output.String())
		}
	case <-time.After(20 * time.Second):
		long.Process.Kill()
		t.Fatal("the session outlived its token")
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, pgFile)); !os.IsNotExist(err) {
		t.Fatalf("postgres.url left behind: %v", err)
	}
}

// TestServePostgresNeedsTLSOffLoopback: serve refuses a PostgreSQL
// gateway off loopback without a certificate.
func TestServePostgresNeedsTLSOffLoopback(t *testing.T) {
	cfg := testConfig(newDir(t), &syncBuffer{})
	cfg.PGAddr = "0.0.0.0:0"
	err := Run(t.Context(), cfg, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "refusing to serve the PostgreSQL gateway without TLS") {
		t.Fatalf("Run: %v", err)
	}
}
