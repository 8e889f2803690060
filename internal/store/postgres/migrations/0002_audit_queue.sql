-- The audit queue (auditqueue.go): records acknowledged by a queued audit
-- log of any process, waiting for the sequencer (the process holding the
-- advisory lock) to add them to audit_records and audit_hashes, in the
-- transaction that deletes them here. id orders them (bigserial: the
-- order of the INSERTs, not always of their commits).
CREATE TABLE audit_queue (
	id   bigserial PRIMARY KEY,
	leaf bytea NOT NULL CHECK (octet_length(leaf) <= 8192)
);
