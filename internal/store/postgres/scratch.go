package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Scratch creates a new, empty database named prefix and 16 random hex
// digits on the server dsn connects to (its role needs CREATEDB), for a
// run that must not touch existing data: tests and benchmarks. It returns
// a connection string for the new database, equal to dsn but for the
// database name, and drop, which deletes the database, closing the
// connections left on it. prefix must be a lowercase SQL identifier.
func Scratch(ctx context.Context, dsn, prefix string) (scratch string, drop func(context.Context) error, err error) {
	_, pw, err := ParseDSN(dsn)
	if err != nil {
		return "", nil, err
	}
	var b [8]byte
	rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()
	if err := execOnce(ctx, dsn, `CREATE DATABASE `+ident); err != nil {
		return "", nil, scrub(fmt.Errorf("postgres: create database %s: %w", name, err), pw)
	}
	drop = func(ctx context.Context) error {
		// WITH (FORCE) needs PostgreSQL 13.
		err := execOnce(ctx, dsn, `DROP DATABASE IF EXISTS `+ident+` WITH (FORCE)`)
		return scrub(err, pw)
	}
	return withDatabase(dsn, name), drop, nil
}

// execOnce runs one statement on its own connection to dsn.
func execOnce(ctx context.Context, dsn, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns the connection string dsn with its database
// replaced by name.
func withDatabase(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.Path, u.RawPath = "/"+name, ""
			if q, err := url.ParseQuery(u.RawQuery); err == nil && q.Has("dbname") {
				q.Del("dbname")
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
	}
	return dsn + " dbname=" + name // keyword/value form: the last one wins
}
