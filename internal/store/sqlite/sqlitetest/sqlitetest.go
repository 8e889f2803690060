// Package sqlitetest opens a latchkey SQLite database file the way an
// attacker with write access to the disk would, for the tests that tamper
// with the audit log under a store and check that audit verify notices.
package sqlitetest

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	_ "modernc.org/sqlite" // the "sqlite" driver
)

// OpenRaw opens the database file at path on a connection of its own,
// outside any Store. If the file holds an audit log, its runs
// (migrations/0014_audit_runs.sql in package sqlite) are first rewritten
// as runs of one record and of one hash each, which stores the same log
// (it verifies to the same root), and two temporary views present them
// as one row per record and per stored hash:
//
//	audit_records (idx, leaf)
//	audit_hashes  (idx, hash)
//
// An INSERT, UPDATE or DELETE on either view edits the runs beneath, so a
// test can change, delete, insert or reorder single records and hashes
// with plain SQL. The views live on the one connection OpenRaw keeps.
func OpenRaw(ctx context.Context, path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // the temporary views are the connection's
	db.SetConnMaxLifetime(0)
	var tables int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name IN ('audit_leaf_runs', 'audit_hash_runs')`).Scan(&tables)
	if err == nil && tables == 2 {
		err = split(ctx, db)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitetest: %s: %w", path, err)
	}
	return db, nil
}

// split rewrites every run as runs of one, and creates the views.
func split(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	type leaf struct {
		idx  int64
		data []byte
	}
	var leaves []leaf
	rows, err := tx.QueryContext(ctx, `SELECT first, n, lens, leaves FROM audit_leaf_runs ORDER BY first`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var first, n int64
		var lens, data []byte
		if err := rows.Scan(&first, &n, &lens, &data); err != nil {
			rows.Close()
			return err
		}
		if int64(len(lens)) != 2*n {
			rows.Close()
			return fmt.Errorf("run %d: %d records but %d bytes of lengths", first, n, len(lens))
		}
		for i := range n {
			l := int(binary.BigEndian.Uint16(lens[2*i:]))
			if l > len(data) {
				rows.Close()
				return fmt.Errorf("run %d: record %d overruns its run", first, first+i)
			}
			leaves = append(leaves, leaf{first + i, data[:l]})
			data = data[l:]
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	type hash struct {
		idx int64
		h   []byte
	}
	var hashes []hash
	rows, err = tx.QueryContext(ctx, `SELECT first, hashes FROM audit_hash_runs ORDER BY first`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var first int64
		var b []byte
		if err := rows.Scan(&first, &b); err != nil {
			rows.Close()
			return err
		}
		for i := 0; i+32 <= len(b); i += 32 {
			hashes = append(hashes, hash{first + int64(i/32), b[i : i+32]})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	stmts := []string{`DELETE FROM audit_leaf_runs`, `DELETE FROM audit_hash_runs`}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	for _, l := range leaves {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_leaf_runs (first, n, lens, leaves) VALUES (?, 1, ?, ?)`,
			l.idx, binary.BigEndian.AppendUint16(nil, uint16(len(l.data))), l.data); err != nil {
			return err
		}
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_hash_runs (first, hashes) VALUES (?, ?)`, h.idx, h.h); err != nil {
			return err
		}
	}
	for _, q := range views {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return errors.Join(fmt.Errorf("%s", q), err)
		}
	}
	return tx.Commit()
}

// views are the temporary views over runs of one, and their triggers.
var views = []string{
	`CREATE TEMP VIEW audit_records AS SELECT first AS idx, leaves AS leaf FROM audit_leaf_runs`,
	`CREATE TEMP TRIGGER audit_records_insert INSTEAD OF INSERT ON audit_records BEGIN
		INSERT INTO audit_leaf_runs (first, n, lens, leaves)
			VALUES (NEW.idx, 1, unhex(printf('%04x', length(NEW.leaf))), NEW.leaf);
	END`,
	`CREATE TEMP TRIGGER audit_records_update INSTEAD OF UPDATE ON audit_records BEGIN
		UPDATE audit_leaf_runs SET first = NEW.idx, lens = unhex(printf('%04x', length(NEW.leaf))), leaves = NEW.leaf
			WHERE first = OLD.idx;
	END`,
	`CREATE TEMP TRIGGER audit_records_delete INSTEAD OF DELETE ON audit_records BEGIN
		DELETE FROM audit_leaf_runs WHERE first = OLD.idx;
	END`,
	`CREATE TEMP VIEW audit_hashes AS SELECT first AS idx, hashes AS hash FROM audit_hash_runs`,
	`CREATE TEMP TRIGGER audit_hashes_insert INSTEAD OF INSERT ON audit_hashes BEGIN
		INSERT INTO audit_hash_runs (first, hashes) VALUES (NEW.idx, NEW.hash);
	END`,
	`CREATE TEMP TRIGGER audit_hashes_update INSTEAD OF UPDATE ON audit_hashes BEGIN
		UPDATE audit_hash_runs SET first = NEW.idx, hashes = NEW.hash WHERE first = OLD.idx;
	END`,
	`CREATE TEMP TRIGGER audit_hashes_delete INSTEAD OF DELETE ON audit_hashes BEGIN
		DELETE FROM audit_hash_runs WHERE first = OLD.idx;
	END`,
}
