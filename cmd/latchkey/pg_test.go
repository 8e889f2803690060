package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rogpeppe/go-internal/testscript"
)

// pgCondition is the script condition [pg]: LATCHKEY_TEST_POSTGRES holds
// a superuser DSN. Without it, with LATCHKEY_POSTGRES_REQUIRED=1, the
// condition is an error rather than a skip.
func pgCondition() (bool, error) {
	if os.Getenv("LATCHKEY_TEST_POSTGRES") != "" {
		return true, nil
	}
	if os.Getenv("LATCHKEY_POSTGRES_REQUIRED") == "1" {
		return false, errRequired
	}
	return false, nil
}

var errRequired = &os.PathError{Op: "getenv", Path: "LATCHKEY_TEST_POSTGRES", Err: os.ErrNotExist}

// cmdPgsetup: pgsetup
//
// creates, on the server of LATCHKEY_TEST_POSTGRES, a database with table
// items (id, v) and a read role (SELECT) and a write role (SELECT, INSERT,
// UPDATE, DELETE), dropped when the script ends. It sets PGDB, PGRO, PGRW
// and PGUPSTREAM (postgres://HOST:PORT?sslmode=...) and writes the
// passwords to ro.pw and rw.pw.
func cmdPgsetup(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: pgsetup")
	}
	dsn := os.Getenv("LATCHKEY_TEST_POSTGRES")
	u, err := url.Parse(dsn)
	ts.Check(err)
	b := make([]byte, 6)
	rand.Read(b)
	db := "lkscript_" + hex.EncodeToString(b)
	rand.Read(b)
	ropw := hex.EncodeToString(b)
	rand.Read(b)
	rwpw := hex.EncodeToString(b)
	exec := func(database string, stmts ...string) {
		cfg, err := pgconn.ParseConfig(dsn)
		ts.Check(err)
		if database != "" {
			cfg.Database = database
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgconn.ConnectConfig(ctx, cfg)
		ts.Check(err)
		defer c.Close(context.Background())
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s).ReadAll(); err != nil {
				ts.Fatalf("%s: %v", s, err)
			}
		}
	}
	exec("", "CREATE DATABASE "+db, "CREATE ROLE "+db+"_ro LOGIN PASSWORD '"+ropw+"'", "CREATE ROLE "+db+"_rw LOGIN PASSWORD '"+rwpw+"'")
	ts.Defer(func() {
		exec("", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)", "DROP ROLE IF EXISTS "+db+"_ro", "DROP ROLE IF EXISTS "+db+"_rw")
	})
	exec(db, "REVOKE ALL ON DATABASE "+db+" FROM PUBLIC", "GRANT CONNECT ON DATABASE "+db+" TO "+db+"_ro, "+db+"_rw",
		"CREATE TABLE items (id int PRIMARY KEY, v text)", "INSERT INTO items VALUES (1, 'one')",
		"GRANT SELECT ON items TO "+db+"_ro", "GRANT SELECT, INSERT, UPDATE, DELETE ON items TO "+db+"_rw")
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	upstream := "postgres://" + net.JoinHostPort(u.Hostname(), port)
	if m := u.Query().Get("sslmode"); m != "" {
		upstream += "?sslmode=" + m
	}
	ts.Setenv("PGDB", db)
	ts.Setenv("PGRO", db+"_ro")
	ts.Setenv("PGRW", db+"_rw")
	ts.Setenv("PGUPSTREAM", upstream)
	ts.Check(os.WriteFile(ts.MkAbs("ro.pw"), []byte(ropw+"\n"), 0o600))
	ts.Check(os.WriteFile(ts.MkAbs("rw.pw"), []byte(rwpw+"\n"), 0o600))
}

// cmdWaitpg: waitpg DIR
//
// waits up to 10 s for DIR/postgres.url and sets PGHOST and PGPORT from it.
func cmdWaitpg(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitpg DIR")
	}
	path := filepath.Join(ts.MkAbs(args[0]), "postgres.url")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			u, err := url.Parse(strings.TrimSpace(string(b)))
			ts.Check(err)
			ts.Setenv("PGHOST", u.Hostname())
			ts.Setenv("PGPORT", u.Port())
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within 10s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
