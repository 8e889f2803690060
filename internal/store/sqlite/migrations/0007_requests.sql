-- Access requests (just-in-time access) and approver groups.
--
--   access_requests.state   TEXT     'pending', 'approved', 'denied' or
--                                    'fetched'; "expired" is never stored:
--                                    a pending or approved request past
--                                    expires_at reads as expired.
--   access_requests.ttl_ms  INTEGER  lifetime of the token to issue, in
--                                    milliseconds, counted from approval.
--   access_requests.requester TEXT   id of the request-only token that asked.
--   access_requests.token_id  TEXT   id of the token issued at fetch; '' before.
--   decided_by, approver    TEXT     an approver's identity: the note of the
--                                    admin token that approved or denied.
--   No token secret is ever stored here: the token is generated at fetch.
--   access_requests.id      TEXT     chosen by package access: "rq_" and 16
--                                    letters of lowercase base32.
CREATE TABLE access_requests (
	id          TEXT    PRIMARY KEY NOT NULL,
	contractor  TEXT    NOT NULL REFERENCES contractors (name),
	requester   TEXT    NOT NULL,
	scopes      TEXT,
	ttl_ms      INTEGER NOT NULL CHECK (ttl_ms > 0),
	reason      TEXT    NOT NULL,
	state       TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'fetched')),
	created_at  INTEGER,
	expires_at  INTEGER,
	decided_by  TEXT    NOT NULL,
	decided_at  INTEGER,
	deny_reason TEXT    NOT NULL,
	token_id    TEXT    NOT NULL,
	fetched_at  INTEGER
) STRICT;

CREATE INDEX access_requests_by_contractor ON access_requests (contractor);

-- One row per distinct approver of a request: the key makes a second
-- approval by the same approver a conflict, so it never counts twice.
CREATE TABLE request_approvals (
	request_id TEXT    NOT NULL REFERENCES access_requests (id),
	approver   TEXT    NOT NULL,
	token_id   TEXT    NOT NULL,
	at         INTEGER,
	PRIMARY KEY (request_id, approver)
) STRICT, WITHOUT ROWID;

-- Approver groups: each member (an identity, as in an admin token's note)
-- may approve any contractor's request.
CREATE TABLE approvers (
	group_name TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at INTEGER,
	created_by TEXT NOT NULL,
	PRIMARY KEY (group_name, name)
) STRICT, WITHOUT ROWID;
