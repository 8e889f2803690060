-- 0014: the audit tree is stored in runs, one row for many records and
-- one row for many hashes, instead of one row per record and per hash.
-- An integration of a few hundred records into the tree inserted about
-- three rows per record, and those inserts were most of its cost (the
-- serve process's CPU, behind every gateway request); it now inserts a
-- few rows per batch (auditruns.go).
--
-- audit_leaf_runs holds records first .. first+n-1:
--   first   INTEGER  index of the run's first record
--   n       INTEGER  records in the run, 1 .. 256
--   lens    BLOB     each record's leaf length, 2 bytes big-endian each
--   leaves  BLOB     the leaves (canonical record encodings) back to back
-- audit_hash_runs holds stored hashes first .. first+length(hashes)/32-1
-- (tlog.StoredHashIndex numbering), 32 bytes each, back to back.
--
-- Runs tile the index space without gaps or overlaps; a reader that
-- finds otherwise reports the records or hashes as missing (audit
-- verify names the first). Existing rows become runs of one.
CREATE TABLE audit_leaf_runs (
	first  INTEGER PRIMARY KEY NOT NULL CHECK (first >= 0),
	n      INTEGER NOT NULL CHECK (n BETWEEN 1 AND 256),
	lens   BLOB    NOT NULL CHECK (length(lens) = 2 * n),
	leaves BLOB    NOT NULL CHECK (length(leaves) <= 8192 * n)
) STRICT;

CREATE TABLE audit_hash_runs (
	first  INTEGER PRIMARY KEY NOT NULL CHECK (first >= 0),
	hashes BLOB    NOT NULL CHECK (length(hashes) BETWEEN 32 AND 32 * 1024 AND length(hashes) % 32 = 0)
) STRICT;

INSERT INTO audit_leaf_runs (first, n, lens, leaves)
	SELECT idx, 1, unhex(printf('%04x', length(leaf))), leaf FROM audit_records;
INSERT INTO audit_hash_runs (first, hashes) SELECT idx, hash FROM audit_hashes;
DROP TABLE audit_records;
DROP TABLE audit_hashes;
