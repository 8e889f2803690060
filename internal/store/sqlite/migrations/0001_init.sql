-- 0001_init: latchkey's first schema.
--
-- Stored formats, column by column:
--   *_at, until_at  INTEGER  unix milliseconds UTC; NULL stands for the zero
--                            time.Time (never set). Sub-millisecond parts are
--                            truncated when stored.
--   scopes, cidrs   TEXT     JSON array of strings, e.g. ["svc:read"]; NULL
--                            for an empty list.
--   hash            BLOB     exactly 32 bytes: SHA-256 of the token secret.
--   sealed_credential BLOB   ciphertext from package seal, opaque; NULL when
--                            empty.
--   contractor      TEXT     contractor name; '' on admin tokens.
--   booleans        INTEGER  0 or 1.
-- Every table is STRICT so a value of the wrong type is refused, not coerced.

CREATE TABLE contractors (
	name       TEXT    PRIMARY KEY NOT NULL,
	email      TEXT    NOT NULL,
	company    TEXT    NOT NULL,
	sponsor    TEXT    NOT NULL,
	until_at   INTEGER,
	disabled   INTEGER NOT NULL CHECK (disabled IN (0, 1)),
	created_at INTEGER,
	created_by TEXT    NOT NULL
) STRICT;

CREATE TABLE services (
	name              TEXT PRIMARY KEY NOT NULL,
	upstream          TEXT NOT NULL,
	sealed_credential BLOB,
	created_at        INTEGER,
	created_by        TEXT NOT NULL
) STRICT;

-- AUTOINCREMENT: a grant id is never handed out twice.
CREATE TABLE grants (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	contractor TEXT    NOT NULL REFERENCES contractors (name),
	scopes     TEXT,
	expires_at INTEGER,
	created_at INTEGER,
	created_by TEXT    NOT NULL,
	revoked_at INTEGER,
	revoked_by TEXT    NOT NULL
) STRICT;

CREATE INDEX grants_by_contractor ON grants (contractor);

-- tokens is clustered by (contractor, id), which makes the primary key the
-- index of tokens by contractor: the reports read the table in that order
-- without sorting, and one contractor's tokens lie together. Admin tokens
-- have contractor ''. Because the key has no NULL, contractor cannot be a
-- foreign key; the store checks it in the transaction that inserts.
-- tokens_by_id serves lookups by id and keeps ids unique across
-- contractors; tokens_by_liveness serves "active at t" filters.
CREATE TABLE tokens (
	contractor   TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	admin        INTEGER NOT NULL CHECK (admin IN (0, 1)),
	scopes       TEXT,
	hash         BLOB    NOT NULL CHECK (length(hash) = 32),
	expires_at   INTEGER,
	cidrs        TEXT,
	max_uses     INTEGER NOT NULL,
	uses         INTEGER NOT NULL,
	note         TEXT    NOT NULL,
	created_at   INTEGER,
	created_by   TEXT    NOT NULL,
	last_used_at INTEGER,
	revoked_at   INTEGER,
	revoked_by   TEXT    NOT NULL,
	parent       TEXT    NOT NULL,
	PRIMARY KEY (contractor, id),
	CHECK ((admin = 1) = (contractor = ''))
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX tokens_by_id ON tokens (id);
CREATE INDEX tokens_by_liveness ON tokens (revoked_at, expires_at);

-- scope_uses holds, per contractor and scope, the last time a token of that
-- contractor was allowed a request by that scope.
CREATE TABLE scope_uses (
	contractor   TEXT    NOT NULL REFERENCES contractors (name),
	scope        TEXT    NOT NULL,
	last_used_at INTEGER NOT NULL,
	PRIMARY KEY (contractor, scope)
) STRICT, WITHOUT ROWID;
