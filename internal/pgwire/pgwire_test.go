package pgwire_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"latchkey/internal/access"
	"latchkey/internal/audit"
	"latchkey/internal/pgwire"
)

// TestReadWrite: a read session logs in upstream as the read role and
// cannot write (PostgreSQL itself says permission denied); a write
// session logs in as the write role and can.
func TestReadWrite(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	read, _ := e.issue(t, "pg:read:/"+e.db.Name)
	write, _ := e.issue(t, "pg:write:/"+e.db.Name)
	database := "pg/" + e.db.Name

	rc := e.mustConnect(t, read, database)
	var user, v string
	if err := rc.QueryRow(ctx, "SELECT current_user, v FROM items WHERE id = $1", 1).Scan(&user, &v); err != nil {
		t.Fatal(err)
	}
	if user != e.db.ReadUser || v != "one" {
		t.Fatalf("read session: current_user %q, v %q", user, v)
	}
	_, err := rc.Exec(ctx, "INSERT INTO items VALUES (2, 'two')")
	if pe := pgErr(t, err); pe.Code != "42501" || !strings.Contains(pe.Message, "permission denied") {
		t.Fatalf("read session insert: %v", err)
	}

	wc := e.mustConnect(t, write, database)
	if _, err := wc.Exec(ctx, "INSERT INTO items VALUES (2, 'two')"); err != nil {
		t.Fatalf("write session insert: %v", err)
	}
	if err := wc.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != e.db.WriteUser {
		t.Fatalf("write session: current_user %q, %v", user, err)
	}
	if got := e.db.Query(t, "SELECT count(*) FROM items"); got != "2" {
		t.Fatalf("items: %s rows, want 2", got)
	}
	e.noSecret(t, read, write, e.db.ReadPassword, e.db.WritePassword)
}

// TestPsql: psql, end to end: a query through the gateway, and a refusal
// that psql shows as it is.
func TestPsql(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("no psql")
	}
	e := newEnv(t)
	read, _ := e.issue(t, "pg:read:/"+e.db.Name)
	host, port, _ := net.SplitHostPort(e.addr)
	run := func(password, database, sql string) (string, error) {
		cmd := exec.Command(psql, "-X", "-A", "-t", "-h", host, "-p", port, "-U", "alice", "-d", database, "-c", sql)
		cmd.Env = []string{"PGPASSWORD=" + password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(read, "pg/"+e.db.Name, "SELECT current_user || ':' || v FROM items")
	if err != nil || strings.TrimSpace(out) != e.db.ReadUser+":one" {
		t.Fatalf("psql select: %v\n%s", err, out)
	}
	out, err = run(read, "pg/"+e.db.Name, "DELETE FROM items")
	if err == nil || !strings.Contains(out, "permission denied for table items") {
		t.Fatalf("psql delete with a read token: %v\n%s", err, out)
	}
	out, err = run(read+"x", "pg/"+e.db.Name, "SELECT 1")
	if err == nil || !strings.Contains(out, "FATAL:  latchkey: token_malformed: malformed token") {
		t.Fatalf("psql with a bad token: %v\n%s", err, out)
	}
	out, err = run(read, "pg/nope", "SELECT 1")
	if err == nil || !strings.Contains(out, "FATAL:  latchkey: scope_denied: no scope of token") {
		t.Fatalf("psql with no scope: %v\n%s", err, out)
	}
}

// TestRefusals: every refusal at session start is a FATAL with its
// reason, audited as a denied db.session.open, and the upstream never
// sees a connection.
func TestRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	db := e.db.Name
	good, _ := e.issue(t, "pg:read:/"+db)
	revoked, revokedID := e.issue(t, "pg:read:/"+db)
	if err := e.a.Revoke(ctx, root, revokedID); err != nil {
		t.Fatal(err)
	}
	other, _ := e.issue(t, "pg:read:/otherdb")
	narrow, _ := e.issue(t, "pg:GET:/"+db) // not all of read
	admin, err := e.a.Issue(ctx, root, access.IssueRequest{Admin: true, Scopes: []string{"admin:*"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	bound, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"pg:read:/" + db}, TTL: time.Hour,
		Bind: access.BindDPoP, Thumbprint: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.AddService(ctx, root, "web", "https://web.internal", nil); err != nil {
		t.Fatal(err)
	}
	unknown := "lk_" + strings.Repeat("A", 50)
	for _, tc := range []struct {
		name, user, password, database string
		code, reason                   string
	}{
		{"malformed", "alice", "not-a-token", "pg/" + db, "28P01", access.ReasonMalformed},
		{"unknown", "alice", unknown, "pg/" + db, "28P01", access.ReasonMalformed}, // bad checksum
		{"revoked", "alice", revoked, "pg/" + db, "28P01", access.ReasonRevoked},
		{"wrong user", "bob", good, "pg/" + db, "28000", pgwire.ReasonUserMismatch},
		{"other database", "alice", good, "pg/postgres", "28000", pgwire.ReasonScopeDenied},
		{"scope for another database", "alice", other, "pg/" + db, "28000", pgwire.ReasonScopeDenied},
		{"GET is not read", "alice", narrow, "pg/" + db, "28000", pgwire.ReasonScopeDenied},
		{"admin token", "alice", admin.Text, "pg/" + db, "28000", pgwire.ReasonScopeDenied},
		{"dpop-bound token", "alice", bound.Text, "pg/" + db, "28000", pgwire.ReasonProofInvalid},
		{"no service", "alice", good, db, "3D000", pgwire.ReasonDatabaseInvalid},
		{"bad database", "alice", good, "pg/" + db + "/x", "3D000", pgwire.ReasonDatabaseInvalid},
		{"unknown service", "alice", good, "nope/" + db, "28000", pgwire.ReasonScopeDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.find(t, pgwire.ActionSessionOpen))
			cctx, cancel := context.WithTimeout(ctx, liveness)
			defer cancel()
			c, err := pgconn.Connect(cctx, e.dsn(tc.user, tc.password, tc.database))
			if err == nil {
				c.Close(ctx)
				t.Fatal("connected")
			}
			pe := pgErr(t, err)
			if pe.Severity != "FATAL" || pe.Code != tc.code || !hasReason(pe.Message, tc.reason) {
				t.Fatalf("got %s %s %q, want FATAL %s latchkey: %s: ...", pe.Severity, pe.Code, pe.Message, tc.code, tc.reason)
			}
			opens := e.find(t, pgwire.ActionSessionOpen)
			if len(opens) != before+1 {
				t.Fatalf("%d db.session.open records, want %d", len(opens), before+1)
			}
			if r := opens[len(opens)-1]; r.Decision != audit.Deny || r.Reason != tc.reason {
				t.Fatalf("audited %s %q, want deny %q", r.Decision, r.Reason, tc.reason)
			}
		})
	}
	// A token for a service that is not a postgres service.
	webTok, err := e.a.AddGrant(ctx, root, "alice", []string{"web:read:/x"}, e.clock.Now().Add(time.Hour))
	_ = webTok
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := e.issue(t, "web:read:/x")
	_, err = pgconn.Connect(ctx, e.dsn("alice", wt, "web/x"))
	if pe := pgErr(t, err); !hasReason(pe.Message, pgwire.ReasonServiceUnknown) {
		t.Fatalf("http service: %v", err)
	}
	// Expired: move the clock past the token's end.
	e.clock.Add(2 * time.Hour)
	_, err = pgconn.Connect(ctx, e.dsn("alice", good, "pg/"+db))
	if pe := pgErr(t, err); pe.Code != "28P01" || !hasReason(pe.Message, access.ReasonExpired) {
		t.Fatalf("expired: %v", err)
	}
	if n := e.find(t, pgwire.ActionSessionClose); len(n) != 0 {
		t.Fatalf("%d sessions closed, but none opened", len(n))
	}
}

// TestStatementAudit: every statement, simple or extended, is audited
// before it runs, with its text and only a hash of its parameters, and
// the session's close says what it relayed.
func TestStatementAudit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	write, id := e.issue(t, "pg:write:/"+e.db.Name)
	c := e.mustConnect(t, write, "pg/"+e.db.Name)
	const secretValue = "s3cr3t-param-value-9f8e7d"
	if _, err := c.Exec(ctx, "INSERT INTO items VALUES ($1, $2)", 7, secretValue); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SELECT 42", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	long := "SELECT '" + strings.Repeat("é", 1500) + "'"
	if _, err := c.Exec(ctx, long, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	var stmts []audit.Record
	for _, r := range e.find(t, pgwire.ActionStatement) {
		if r.TokenID == id {
			stmts = append(stmts, r)
		}
	}
	var insert, simple, truncated bool
	for _, r := range stmts {
		if r.Contractor != "alice" || r.Service != "pg" || r.Path != "/"+e.db.Name || r.Decision != audit.Allow {
			t.Fatalf("statement record %+v", r)
		}
		switch {
		case strings.HasSuffix(r.Reason, " sql=INSERT INTO items VALUES ($1, $2)"):
			insert = true
			if r.Method != pgwire.KindExecute || !strings.Contains(r.Reason, " params=2 params_sha256="+paramsHash("7", secretValue)+" ") {
				t.Fatalf("insert record %s %q", r.Method, r.Reason)
			}
		case strings.HasSuffix(r.Reason, "sql=SELECT 42"):
			simple = r.Method == pgwire.KindQuery
		case strings.Contains(r.Reason, "sql=SELECT 'é"):
			sum := sha256.Sum256([]byte(long))
			truncated = strings.HasSuffix(r.Reason, "…[truncated]") && strings.HasPrefix(r.Reason, "sql_sha256="+hex.EncodeToString(sum[:])) && len(r.Reason) <= 1000
		}
	}
	if !insert || !simple || !truncated {
		t.Fatalf("insert %v, simple %v, truncated %v in %d records", insert, simple, truncated, len(stmts))
	}
	e.noSecret(t, secretValue, write)
	poll(t, func() string {
		for _, r := range e.find(t, pgwire.ActionSessionClose) {
			if r.TokenID == id && strings.HasPrefix(r.Reason, "end=client_closed client_bytes=") && strings.Contains(r.Reason, " duration=") {
				return ""
			}
		}
		return "no close record"
	})
}

// paramsHash is the hash of text parameters as pgx sends them (int4 7 in
// binary, the text as is).
func paramsHash(intParam, text string) string {
	h := sha256.New()
	var n [4]byte
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], 7)
	binary.BigEndian.PutUint32(n[:], 4)
	h.Write(n[:])
	h.Write(v[:])
	binary.BigEndian.PutUint32(n[:], uint32(len(text)))
	h.Write(n[:])
	h.Write([]byte(text))
	return hex.EncodeToString(h.Sum(nil))
}

// TestAuditFailClosed: when the audit log cannot be written, the
// statement is refused with a FATAL and never reaches PostgreSQL.
func TestAuditFailClosed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	write, _ := e.issue(t, "pg:write:/"+e.db.Name)
	c := e.mustConnect(t, write, "pg/"+e.db.Name)
	e.aud.down.Store(true)
	_, err := c.Exec(ctx, "INSERT INTO items VALUES (3, 'three')", pgx.QueryExecModeSimpleProtocol)
	if pe := pgErr(t, err); pe.Severity != "FATAL" || !hasReason(pe.Message, access.ReasonAuditUnavailable) {
		t.Fatalf("insert while the audit log is down: %v", err)
	}
	if got := e.db.Query(t, "SELECT count(*) FROM items WHERE id = 3"); got != "0" {
		t.Fatal("the statement reached PostgreSQL unaudited")
	}
	// Extended protocol too.
	e.aud.down.Store(false)
	c = e.mustConnect(t, write, "pg/"+e.db.Name)
	e.aud.down.Store(true)
	_, err = c.Exec(ctx, "INSERT INTO items VALUES ($1, 'three')", 3)
	if pe := pgErr(t, err); !hasReason(pe.Message, access.ReasonAuditUnavailable) {
		t.Fatalf("extended insert while the audit log is down: %v", err)
	}
	if got := e.db.Query(t, "SELECT count(*) FROM items WHERE id = 3"); got != "0" {
		t.Fatal("the extended statement reached PostgreSQL unaudited")
	}
	// And no session opens.
	_, err = pgconn.Connect(ctx, e.dsn("alice", write, "pg/"+e.db.Name))
	if pe := pgErr(t, err); !hasReason(pe.Message, access.ReasonAuditUnavailable) {
		t.Fatalf("connect while the audit log is down: %v", err)
	}
}

// TestRevokeEndsSession: revoking the token ends its live sessions, idle
// or running a statement, with a FATAL, and the close is audited.
func TestRevokeEndsSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok, id := e.issue(t, "pg:write:/"+e.db.Name)
	busy := e.mustConnect(t, tok, "pg/"+e.db.Name)
	idle := e.mustConnect(t, tok, "pg/"+e.db.Name)
	if _, err := idle.Exec(ctx, "BEGIN; INSERT INTO items VALUES (5, 'five')", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := busy.Exec(ctx, "SELECT pg_sleep(30)")
		errc <- err
	}()
	poll(t, func() string {
		if e.db.Query(t, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'") != "1" {
			return "the sleep has not started"
		}
		return ""
	})
	start := time.Now()
	if err := e.a.Revoke(ctx, root, id); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		took := time.Since(start)
		t.Logf("busy session ended %v after the revocation", took)
		if pe := pgErr(t, err); pe.Severity != "FATAL" || !hasReason(pe.Message, access.ReasonRevoked) {
			t.Fatalf("busy session: %v", err)
		}
	case <-time.After(liveness):
		t.Fatal("the busy session outlived its token")
	}
	_, err := idle.Exec(ctx, "SELECT 1")
	if err == nil {
		t.Fatal("the idle session outlived its token")
	}
	// The open transaction was rolled back with the upstream connection.
	poll(t, func() string {
		if e.db.Query(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = '"+e.db.WriteUser+"'") != "0" {
			return "upstream sessions still open"
		}
		return ""
	})
	if got := e.db.Query(t, "SELECT count(*) FROM items WHERE id = 5"); got != "0" {
		t.Fatal("the revoked session's transaction was committed")
	}
	poll(t, func() string {
		n := 0
		for _, r := range e.find(t, pgwire.ActionSessionClose) {
			if r.TokenID == id && strings.HasPrefix(r.Reason, "end=token_revoked ") {
				n++
			}
		}
		if n != 2 {
			return "close records: want 2 with end=token_revoked"
		}
		return ""
	})
}

// TestExpiryEndsSession: a session ends when its token expires.
func TestExpiryEndsSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	iss, err := e.a.Issue(ctx, root, access.IssueRequest{Contractor: "alice", Scopes: []string{"pg:read:/" + e.db.Name}, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The Hold timer runs on real time from the token's end as the
	// Authority's clock sees it.
	c := e.mustConnect(t, iss.Text, "pg/"+e.db.Name)
	_, err = c.Exec(ctx, "SELECT pg_sleep(30)")
	if pe := pgErr(t, err); !hasReason(pe.Message, access.ReasonExpired) {
		t.Fatalf("session past its token's expiry: %v", err)
	}
}

// TestCancel: a client's cancel request (with the gateway's key) cancels
// its upstream statement; a forged one does nothing.
func TestCancel(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.issue(t, "pg:read:/"+e.db.Name)
	c := e.mustConnect(t, tok, "pg/"+e.db.Name)
	// pgx cancels the running statement when the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Exec(ctx, "SELECT pg_sleep(20)")
	if err == nil || time.Since(start) > liveness {
		t.Fatalf("cancel: %v after %v", err, time.Since(start))
	}
	if !strings.Contains(e.db.Query(t, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'"), "0") {
		t.Fatal("the statement still runs upstream")
	}
	// A forged cancel request is ignored.
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := binary.BigEndian.AppendUint32(nil, 16)
	b = binary.BigEndian.AppendUint32(b, 80877102)
	b = binary.BigEndian.AppendUint32(b, 1234)
	b = binary.BigEndian.AppendUint32(b, 5678)
	conn.Write(b)
	conn.SetReadDeadline(time.Now().Add(liveness))
	var one [1]byte
	if n, err := conn.Read(one[:]); n != 0 || err == nil {
		t.Fatalf("forged cancel: read %d bytes, %v", n, err)
	}
}

// TestUsage: a session counts as a use of its token.
func TestUsage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok, id := e.issue(t, "pg:read:/"+e.db.Name)
	c := e.mustConnect(t, tok, "pg/"+e.db.Name)
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := e.use.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := e.st.Token(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastUsedAt.IsZero() {
		t.Fatal("last use not recorded")
	}
}

// poll calls cond until it returns "" or liveness passes.
func poll(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = errors.New
