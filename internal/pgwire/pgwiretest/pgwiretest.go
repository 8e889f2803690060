// Package pgwiretest gives tests of the PostgreSQL gateway a fresh
// database, with a read role and a write role, on the PostgreSQL server
// whose superuser DSN is in LATCHKEY_TEST_POSTGRES. Without it, tests
// skip, unless LATCHKEY_POSTGRES_REQUIRED=1, which makes them fail.
package pgwiretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DB is a throwaway database and its two roles. The read role may only
// SELECT from table items (id int primary key, v text); the write role
// may also INSERT, UPDATE and DELETE.
type DB struct {
	Addr          string // host:port of the server
	SSLMode       string // of the superuser DSN, "" if none
	Name          string // the database
	ReadUser      string
	ReadPassword  string
	WriteUser     string
	WritePassword string
	admin         string // superuser DSN
}

// New creates the database and roles, dropped when the test ends.
func New(t testing.TB) *DB {
	t.Helper()
	dsn := os.Getenv("LATCHKEY_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("LATCHKEY_POSTGRES_REQUIRED") == "1" {
			t.Fatal("LATCHKEY_TEST_POSTGRES is not set and LATCHKEY_POSTGRES_REQUIRED=1")
		}
		t.Skip("LATCHKEY_TEST_POSTGRES is not set")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("LATCHKEY_TEST_POSTGRES: %v", err)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	suffix := random(6)
	d := &DB{
		Addr: net.JoinHostPort(u.Hostname(), port), SSLMode: u.Query().Get("sslmode"),
		Name: "lk_" + suffix, ReadUser: "lk_" + suffix + "_ro", ReadPassword: random(16),
		WriteUser: "lk_" + suffix + "_rw", WritePassword: random(16), admin: dsn,
	}
	d.Exec(t, "", "CREATE DATABASE "+d.Name,
		"CREATE ROLE "+d.ReadUser+" LOGIN PASSWORD '"+d.ReadPassword+"'",
		"CREATE ROLE "+d.WriteUser+" LOGIN PASSWORD '"+d.WritePassword+"'")
	t.Cleanup(func() {
		d.Exec(t, "", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+d.Name+"' AND pid <> pg_backend_pid()",
			"DROP DATABASE IF EXISTS "+d.Name+" WITH (FORCE)", "DROP ROLE IF EXISTS "+d.ReadUser, "DROP ROLE IF EXISTS "+d.WriteUser)
	})
	d.Exec(t, d.Name, "REVOKE ALL ON DATABASE "+d.Name+" FROM PUBLIC",
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"GRANT CONNECT ON DATABASE "+d.Name+" TO "+d.ReadUser+", "+d.WriteUser,
		"CREATE TABLE items (id int PRIMARY KEY, v text)",
		"INSERT INTO items VALUES (1, 'one')",
		"GRANT SELECT ON items TO "+d.ReadUser,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON items TO "+d.WriteUser)
	return d
}

// Upstream is the service's upstream URL: postgres://HOST:PORT, with the
// superuser DSN's sslmode.
func (d *DB) Upstream() string {
	s := "postgres://" + d.Addr
	if d.SSLMode != "" {
		s += "?sslmode=" + d.SSLMode
	}
	return s
}

// Exec runs statements as the superuser in database db ("" for the DSN's).
func (d *DB) Exec(t testing.TB, db string, stmts ...string) {
	t.Helper()
	c := d.conn(t, db)
	defer c.Close(context.Background())
	for _, s := range stmts {
		if _, err := c.Exec(context.Background(), s).ReadAll(); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// Query returns the first column of the first row of a query run as the
// superuser in the test database.
func (d *DB) Query(t testing.TB, sql string) string {
	t.Helper()
	c := d.conn(t, d.Name)
	defer c.Close(context.Background())
	res, err := c.Exec(context.Background(), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return ""
	}
	return string(res[0].Rows[0][0])
}

func (d *DB) conn(t testing.TB, db string) *pgconn.PgConn {
	t.Helper()
	cfg, err := pgconn.ParseConfig(d.admin)
	if err != nil {
		t.Fatal(err)
	}
	if db != "" {
		cfg.Database = db
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to LATCHKEY_TEST_POSTGRES: %v", err)
	}
	return c
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
