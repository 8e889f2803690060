-- The audit queue's journal files (auditqueue.go): how far each file has
-- been added to the tree. A record acknowledged by a queued audit log is
-- first appended to a journal file beside the database, then added to
-- audit_records and audit_hashes in a later transaction that also moves
-- its file's done offset past it, so that a record is in the tree exactly
-- once, whenever the process dies.
--   name  the journal file's base name, in the queue directory
--   done  bytes of the file whose records are in the tree
CREATE TABLE audit_queue_files (
	name TEXT PRIMARY KEY NOT NULL,
	done INTEGER NOT NULL CHECK (done >= 0)
) STRICT;
