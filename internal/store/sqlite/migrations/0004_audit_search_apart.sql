-- 0004: the audit search columns leave audit_records. Appending a record
-- (on every gateway request, before it is forwarded) now writes only what
-- the Merkle tree covers, its leaf, and its hashes: the five search
-- indexes doubled the pages, and so the WAL frames, of every commit. The
-- search columns live in a separate database file, <name>-search.db,
-- filled from the leaves behind the log (sqlite.Store's indexer) and
-- checked against them by audit verify; it is derived data, rebuilt from
-- the leaves if it is missing.
DROP INDEX audit_by_time;
DROP INDEX audit_by_contractor;
DROP INDEX audit_by_token;
DROP INDEX audit_by_service;
DROP INDEX audit_by_action;

CREATE TABLE audit_records_new (
	idx  INTEGER PRIMARY KEY NOT NULL CHECK (idx >= 0),
	leaf BLOB    NOT NULL CHECK (length(leaf) <= 8192)
) STRICT;
INSERT INTO audit_records_new (idx, leaf) SELECT idx, leaf FROM audit_records;
DROP TABLE audit_records;
ALTER TABLE audit_records_new RENAME TO audit_records;
