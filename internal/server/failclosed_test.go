package server_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	_ "modernc.org/sqlite"

	"latchkey/internal/access"
	"latchkey/internal/adminapi"
	"latchkey/internal/server"
	"latchkey/internal/token"
)

// listing is everything the admin API lists: what an outage must leave
// unchanged.
type listing struct {
	Contractors []adminapi.Contractor
	Services    []adminapi.Service
	Grants      []adminapi.Grant
	Tokens      []adminapi.Token
}

func list(t *testing.T, c *adminapi.Client) listing {
	t.Helper()
	ctx := t.Context()
	var l listing
	var err error
	if l.Contractors, err = c.Contractors(ctx); err != nil {
		t.Fatalf("list contractors: %v", err)
	}
	if l.Services, err = c.Services(ctx); err != nil {
		t.Fatalf("list services: %v", err)
	}
	if l.Grants, err = c.Grants(ctx, "", false); err != nil {
		t.Fatalf("list grants: %v", err)
	}
	if l.Tokens, err = c.Tokens(ctx, "", false); err != nil {
		t.Fatalf("list tokens: %v", err)
	}
	return l
}

// auditRows returns the number of records and of stored hashes in the
// audit tables, read with a connection of its own.
func auditRows(t *testing.T, db *sql.DB) (records, hashes int64) {
	t.Helper()
	err := db.QueryRowContext(t.Context(),
		`SELECT (SELECT coalesce(sum(n), 0) FROM audit_leaf_runs), (SELECT coalesce(sum(length(hashes) / 32), 0) FROM audit_hash_runs)`).Scan(&records, &hashes)
	if err != nil {
		t.Fatalf("count audit rows: %v", err)
	}
	return records, hashes
}

// TestAuditFailClosed makes the audit store refuse writes while serve runs
// (a trigger on audit_leaf_runs, leaving every other table writable) and
// checks that every admin request, write or read, authenticated or not, is
// refused with 503 audit_unavailable, that nothing changed meanwhile, and
// that once the audit store is back, everything works again and the log
// verifies.
func TestAuditFailClosed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var applog, stdout lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- server.Run(ctx, server.Config{DataDir: dir, AdminAddr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0",
			Log: slog.New(slog.NewTextHandler(&applog, nil))}, &stdout)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return within 20s of its context being cancelled")
		}
	}
	defer stop()
	addrPath := filepath.Join(dir, "admin.url")
	deadline := time.Now().Add(10 * time.Second)
	var addr string
	for addr == "" {
		select {
		case err := <-errc:
			t.Fatalf("Run returned before listening: %v", err)
		default:
		}
		if b, err := os.ReadFile(addrPath); err == nil && strings.HasSuffix(string(b), "\n") {
			addr = strings.TrimSpace(string(b))
		} else if time.Now().After(deadline) {
			t.Fatalf("%s not written within 10s", addrPath)
		}
		time.Sleep(5 * time.Millisecond)
	}
	admin := regexp.MustCompile(token.Pattern).FindString(stdout.String())
	if admin == "" {
		t.Fatalf("Run printed no admin token:\n%s", stdout.String())
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &adminapi.Client{Addr: addr, Token: admin, HTTP: &http.Client{Transport: tr, Timeout: 20 * time.Second}}

	// Before the outage: a service, contractors, grants and tokens for the
	// operations the outage will refuse.
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	bg := t.Context()
	_, err := c.AddService(bg, adminapi.NewService{Name: "svc", Upstream: "http://127.0.0.1:9"})
	must("service add", err)
	for _, name := range []string{"alice", "bob"} {
		_, err = c.AddContractor(bg, adminapi.NewContractor{Name: name, Email: name + "@example.com", Sponsor: "s@corp.example", Until: "10d"})
		must("contractor add "+name, err)
	}
	scopes := []string{"svc:read:/x/**"}
	g1, err := c.AddGrant(bg, adminapi.NewGrant{Contractor: "alice", Scopes: scopes})
	must("grant add", err)
	_, err = c.AddGrant(bg, adminapi.NewGrant{Contractor: "bob", Scopes: scopes})
	must("grant add", err)
	t1, err := c.IssueToken(bg, adminapi.NewToken{Contractor: "alice", Scopes: scopes, TTL: "1h"})
	must("token issue", err)
	t2, err := c.IssueToken(bg, adminapi.NewToken{Contractor: "bob", Scopes: scopes, TTL: "1h"})
	must("token issue", err)
	before := list(t, c)

	// The outage: the audit table refuses every insert. Nothing else of
	// the store is touched.
	dsn := (&url.URL{Scheme: "file", Path: filepath.Join(dir, "latchkey.db"), RawQuery: "_pragma=busy_timeout(10000)"}).String()
	db, err := sql.Open("sqlite", dsn)
	must("open the store", err)
	defer db.Close()
	_, err = db.ExecContext(bg, `CREATE TRIGGER audit_down BEFORE INSERT ON audit_leaf_runs BEGIN SELECT RAISE(ABORT, 'audit disk gone'); END`)
	must("create trigger", err)
	// An operation's record is acknowledged once journalled, and added
	// to the tree behind: the outage shows at the first such addition.
	// This read (refused if the records of the setup already met the
	// outage) is journalled, durable, and reaches the tree once the
	// store is back; then /readyz reports the audit log down, and from
	// then on every operation is refused.
	c.Whoami(bg)
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := c.HTTP.Get(addr + "/readyz")
		must("GET /readyz", err)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d 5s into the audit outage", resp.StatusCode)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The rows now: records of the setup still queued when the trigger
	// went in may have reached the tree before it; from here on none can.
	records, hashes := auditRows(t, db)

	refused := []struct {
		name string
		call func(c *adminapi.Client) error
	}{
		{"contractor add", func(c *adminapi.Client) error {
			_, err := c.AddContractor(bg, adminapi.NewContractor{Name: "carol", Email: "carol@example.com", Sponsor: "s@corp.example", Until: "10d"})
			return err
		}},
		{"contractor add (a conflict: its denial cannot be recorded either)", func(c *adminapi.Client) error {
			_, err := c.AddContractor(bg, adminapi.NewContractor{Name: "alice", Email: "alice@example.com", Sponsor: "s@corp.example", Until: "10d"})
			return err
		}},
		{"service add", func(c *adminapi.Client) error {
			_, err := c.AddService(bg, adminapi.NewService{Name: "svc2", Upstream: "http://127.0.0.1:9"})
			return err
		}},
		{"grant add", func(c *adminapi.Client) error {
			_, err := c.AddGrant(bg, adminapi.NewGrant{Contractor: "alice", Scopes: scopes})
			return err
		}},
		{"grant revoke", func(c *adminapi.Client) error { _, err := c.RevokeGrant(bg, g1.ID); return err }},
		{"token issue", func(c *adminapi.Client) error {
			_, err := c.IssueToken(bg, adminapi.NewToken{Contractor: "alice", Scopes: scopes, TTL: "1h"})
			return err
		}},
		{"admin token issue", func(c *adminapi.Client) error {
			_, err := c.IssueToken(bg, adminapi.NewToken{Admin: true, Scopes: []string{"admin:contractors:read"}, TTL: "1h"})
			return err
		}},
		{"token rotate", func(c *adminapi.Client) error { _, err := c.RotateToken(bg, t1.ID, adminapi.Rotation{}); return err }},
		{"token revoke", func(c *adminapi.Client) error { _, err := c.RevokeToken(bg, t2.ID); return err }},
		{"offboard", func(c *adminapi.Client) error { _, err := c.Offboard(bg, "bob"); return err }},
		{"whoami", func(c *adminapi.Client) error { _, err := c.Whoami(bg); return err }},
		{"contractor list", func(c *adminapi.Client) error { _, err := c.Contractors(bg); return err }},
		{"contractor show", func(c *adminapi.Client) error { _, err := c.ShowContractor(bg, "alice"); return err }},
		{"grant list", func(c *adminapi.Client) error { _, err := c.Grants(bg, "", false); return err }},
		{"token list", func(c *adminapi.Client) error { _, err := c.Tokens(bg, "", false); return err }},
		{"token show", func(c *adminapi.Client) error { _, err := c.ShowToken(bg, t1.ID); return err }},
		{"service list", func(c *adminapi.Client) error { _, err := c.Services(bg); return err }},
		{"active report", func(c *adminapi.Client) error { _, err := c.ActiveReport(bg); return err }},
		{"audit search", func(c *adminapi.Client) error { return c.Do(bg, "GET", "/v1/audit", nil, nil, nil) }},
		{"audit checkpoint", func(c *adminapi.Client) error { return c.Do(bg, "GET", "/v1/audit/checkpoint", nil, nil, nil) }},
		{"no token (its refusal cannot be recorded)", func(c *adminapi.Client) error {
			anon := *c
			anon.Token = ""
			_, err := anon.Whoami(bg)
			return err
		}},
		{"forged token (its refusal cannot be recorded)", func(c *adminapi.Client) error {
			bad := *c
			bad.Token = regexp.MustCompile(`_[0-9A-Za-z]{12}`).ReplaceAllString(admin, "_AAAAAAAAAAAA")
			_, err := bad.Whoami(bg)
			return err
		}},
	}
	for _, tc := range refused {
		err := tc.call(c)
		var apiErr *adminapi.APIError
		switch {
		case !errors.As(err, &apiErr):
			t.Errorf("%s during the outage: got %v, want HTTP 503 %s", tc.name, err, access.ReasonAuditUnavailable)
		case apiErr.Status != http.StatusServiceUnavailable || apiErr.Problem.Error != access.ReasonAuditUnavailable:
			t.Errorf("%s during the outage: got HTTP %d %s (%s), want HTTP 503 %s",
				tc.name, apiErr.Status, apiErr.Problem.Error, apiErr.Message, access.ReasonAuditUnavailable)
		case strings.Contains(apiErr.Message, "audit disk gone"):
			t.Errorf("%s during the outage: the client sees the internal error: %q", tc.name, apiErr.Message)
		}
	}
	// Not one audit row was written, and the application log has the
	// full reason.
	if r, h := auditRows(t, db); r != records || h != hashes {
		t.Errorf("audit rows during the outage: %d records, %d hashes; want %d, %d as before", r, h, records, hashes)
	}
	if !strings.Contains(applog.String(), "audit disk gone") {
		t.Errorf("application log does not give the reason of the audit failure:\n%s", applog.String())
	}

	// The audit store is back: nothing was done during the outage, and
	// everything works again. (Only usage counts, kept off the audit
	// path, may have moved.)
	_, err = db.ExecContext(bg, `DROP TRIGGER audit_down`)
	must("drop trigger", err)
	after := list(t, c)
	ignoreUse := cmpopts.IgnoreFields(adminapi.Token{}, "Uses", "LastUsedAt")
	if diff := cmp.Diff(before, after, ignoreUse); diff != "" {
		t.Errorf("store changed during the audit outage (-before +after):\n%s", diff)
	}
	for _, tc := range refused {
		if err := tc.call(c); err != nil && !strings.Contains(tc.name, "conflict") && !strings.Contains(tc.name, "token (") {
			t.Errorf("%s after the outage: %v", tc.name, err)
		}
	}
	if r, _ := auditRows(t, db); r < records+int64(len(refused)) {
		t.Errorf("after the outage the audit log has %d records, want at least %d", r, records+int64(len(refused)))
	}
	tr.CloseIdleConnections()
	stop()

	// The log verifies, and records every operation done after the outage.
	_, ix := openAudit(t, dir)
	for _, k := range []recKey{
		{Action: "contractor.add", Contractor: "carol"},
		{Action: "service.add", Service: "svc2"},
		{Action: "token.revoke", Contractor: "bob", TokenID: t2.ID},
		{Action: "contractor.offboard", Contractor: "bob"},
		{Action: "grant.revoke", Contractor: "alice", Detail: "grant " + itoa(g1.ID)},
	} {
		if ix.allow[k] != 1 {
			t.Errorf("%d allow records %+v, want 1", ix.allow[k], k)
		}
	}
	t.Logf("%d operations refused during the outage; audit log verifies with %d records", len(refused), ix.size)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
