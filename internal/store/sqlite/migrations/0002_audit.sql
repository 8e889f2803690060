-- 0002_audit: the audit log (package audit).
--
-- audit_records holds one row per record. leaf is the record's canonical
-- encoding (package audit, version byte first), the only column the
-- Merkle tree covers and the one every read decodes. The other columns are
-- copies of leaf fields kept for search only; they are derived from leaf
-- in the transaction that inserts it and never trusted on their own.
--   idx         INTEGER  record index, 0, 1, 2, ... without gaps
--   leaf        BLOB     canonical record encoding, at most 8192 bytes
--   time        INTEGER  record time, unix nanoseconds UTC
--   actor, action, contractor, token_id, service, decision
--               TEXT     the record's fields of that name ('' when empty)
--
-- audit_hashes holds the Merkle tree: hash idx is the stored hash index of
-- golang.org/x/mod/sumdb/tlog (StoredHashIndex), hash its 32-byte SHA-256
-- value. Records 0..n-1 have exactly hashes 0..tlog.StoredHashCount(n)-1.
--
-- Each secondary index ends, implicitly, with idx (the rowid), so a filter
-- on one column reads newest first by walking its index backwards. decision
-- has no index of its own: it has two values, a filter on it alone walks
-- idx backwards where about every other row matches, and every index is
-- paid for on every append.

CREATE TABLE audit_records (
	idx        INTEGER PRIMARY KEY NOT NULL CHECK (idx >= 0),
	leaf       BLOB    NOT NULL CHECK (length(leaf) <= 8192),
	time       INTEGER NOT NULL,
	actor      TEXT    NOT NULL,
	action     TEXT    NOT NULL,
	contractor TEXT    NOT NULL,
	token_id   TEXT    NOT NULL,
	service    TEXT    NOT NULL,
	decision   TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_by_time       ON audit_records (time);
CREATE INDEX audit_by_contractor ON audit_records (contractor);
CREATE INDEX audit_by_token      ON audit_records (token_id);
CREATE INDEX audit_by_service    ON audit_records (service);
CREATE INDEX audit_by_action     ON audit_records (action);

CREATE TABLE audit_hashes (
	idx  INTEGER PRIMARY KEY NOT NULL CHECK (idx >= 0),
	hash BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;
