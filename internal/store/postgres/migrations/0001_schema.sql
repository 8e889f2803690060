-- 0001_schema: latchkey's schema on PostgreSQL, the final schema of the
-- SQLite engine's migrations 0001-0011 in one file (PostgreSQL had no
-- release before it). A released migration is never edited: a change is a
-- new file, 0002_what.sql.
--
-- Stored formats, column by column:
--   *_at, until_at  timestamptz  the time truncated to the millisecond; NULL
--                                stands for the zero time.Time (never set).
--   scopes, cidrs, events, private_headers
--                   text[]       a list of strings; NULL for an empty list.
--   hash            bytea        exactly 32 bytes: SHA-256 of the token secret.
--   sealed_*, secret bytea       ciphertext from package seal, opaque.
--   contractor      text         contractor name; '' on admin tokens.
--   text columns    COLLATE "C": ordered and compared as bytes, as the SQLite
--                                engine and Go compare them, whatever the
--                                database's locale.
--   *_ms            bigint       a duration in milliseconds.

CREATE TABLE contractors (
	name       text COLLATE "C"        PRIMARY KEY,
	email      text COLLATE "C"        NOT NULL,
	company    text COLLATE "C"        NOT NULL,
	sponsor    text COLLATE "C"        NOT NULL,
	until_at   timestamptz,
	disabled   boolean     NOT NULL,
	created_at timestamptz,
	created_by text COLLATE "C"        NOT NULL
);

-- private_headers: request header names (canonical form) the gateway
-- removes from every request it forwards to the service.
CREATE TABLE services (
	name              text COLLATE "C" PRIMARY KEY,
	upstream          text COLLATE "C" NOT NULL,
	sealed_credential bytea,
	private_headers   text[],
	created_at        timestamptz,
	created_by        text COLLATE "C" NOT NULL
);

-- An identity column never hands out an id twice.
CREATE TABLE grants (
	id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	contractor text COLLATE "C"        NOT NULL REFERENCES contractors (name),
	scopes     text[],
	expires_at timestamptz,
	created_at timestamptz,
	created_by text COLLATE "C"        NOT NULL,
	revoked_at timestamptz,
	revoked_by text COLLATE "C"        NOT NULL
);
CREATE INDEX grants_by_contractor ON grants (contractor);

-- Admin tokens have contractor '' (so contractor is no foreign key; the
-- store checks it in the transaction that inserts).
--   revoked_reason     one of the store.Revoke* words; '' while unrevoked.
--   parent             the token this one rotated from, '' if none.
--   derived_from       the token a contractor narrowed this one from
--                      (self-service), '' if none; revoking that token
--                      revokes this one.
--   expiry_noticed_at  when the expiring-soon notice was claimed; NULL
--                      while none was sent.
--   cnf_jkt, cnf_x5t   proof-of-possession binding (RFC 9449 DPoP key
--                      thumbprint, RFC 8705 certificate thumbprint),
--                      base64url without padding; '' when not bound.
CREATE TABLE tokens (
	id                text COLLATE "C"        PRIMARY KEY,
	contractor        text COLLATE "C"        NOT NULL,
	admin             boolean     NOT NULL,
	scopes            text[],
	hash              bytea       NOT NULL CHECK (octet_length(hash) = 32),
	expires_at        timestamptz,
	cidrs             text[],
	max_uses          bigint      NOT NULL,
	uses              bigint      NOT NULL,
	note              text COLLATE "C"        NOT NULL,
	created_at        timestamptz,
	created_by        text COLLATE "C"        NOT NULL,
	last_used_at      timestamptz,
	revoked_at        timestamptz,
	revoked_by        text COLLATE "C"        NOT NULL,
	revoked_reason    text COLLATE "C"        NOT NULL DEFAULT '',
	parent            text COLLATE "C"        NOT NULL,
	derived_from      text COLLATE "C"        NOT NULL DEFAULT '',
	cnf_jkt           text COLLATE "C"        NOT NULL DEFAULT '',
	cnf_x5t           text COLLATE "C"        NOT NULL DEFAULT '',
	expiry_noticed_at timestamptz,
	CHECK (admin = (contractor = ''))
);
CREATE INDEX tokens_by_contractor ON tokens (contractor, id);
CREATE INDEX tokens_by_liveness ON tokens (expires_at) WHERE revoked_at IS NULL;
CREATE INDEX tokens_by_parent ON tokens (parent) WHERE parent <> '';
CREATE INDEX tokens_derived_from ON tokens (derived_from) WHERE derived_from <> '';

-- scope_uses holds, per contractor and scope, the last time a token of that
-- contractor was allowed a request by that scope.
CREATE TABLE scope_uses (
	contractor   text COLLATE "C"        NOT NULL REFERENCES contractors (name),
	scope        text COLLATE "C"        NOT NULL,
	last_used_at timestamptz NOT NULL,
	PRIMARY KEY (contractor, scope)
);

-- The audit log (package audit). audit_records holds one row per record:
-- idx (0, 1, 2, ... without gaps) and leaf, the record's canonical encoding,
-- the only thing the Merkle tree covers. audit_hashes holds the tree: idx is
-- the stored hash index of golang.org/x/mod/sumdb/tlog, hash its 32-byte
-- SHA-256 value. Records 0..n-1 have exactly hashes 0..StoredHashCount(n)-1.
CREATE TABLE audit_records (
	idx  bigint PRIMARY KEY CHECK (idx >= 0),
	leaf bytea  NOT NULL CHECK (octet_length(leaf) <= 8192)
);
CREATE TABLE audit_hashes (
	idx  bigint PRIMARY KEY CHECK (idx >= 0),
	hash bytea  NOT NULL CHECK (octet_length(hash) = 32)
);

-- audit_index: the search columns of each record, derived from its leaf
-- behind the log by the indexer (search.go) and checked against the leaves
-- by audit verify; never trusted on its own. time is unix nanoseconds UTC
-- (0 for a leaf that does not decode); the other columns are the record's
-- fields of that name ('' when empty).
CREATE TABLE audit_index (
	idx        bigint PRIMARY KEY CHECK (idx >= 0),
	time       bigint NOT NULL,
	actor      text COLLATE "C"   NOT NULL,
	action     text COLLATE "C"   NOT NULL,
	contractor text COLLATE "C"   NOT NULL,
	token_id   text COLLATE "C"   NOT NULL,
	service    text COLLATE "C"   NOT NULL,
	decision   text COLLATE "C"   NOT NULL
);
CREATE INDEX audit_by_time       ON audit_index (time, idx);
CREATE INDEX audit_by_contractor ON audit_index (contractor, idx);
CREATE INDEX audit_by_token      ON audit_index (token_id, idx);
CREATE INDEX audit_by_service    ON audit_index (service, idx);
CREATE INDEX audit_by_action     ON audit_index (action, idx);

-- Webhooks (package notify). The URL and signing secret are kept only
-- sealed: a URL's path or query may itself be a credential.
--   url_host         the URL's scheme and host, in clear, for listings.
--   url_fingerprint  first 8 hex digits of the SHA-256 of the full URL.
--   events           event types, NULL for all. format 'standard' or 'slack'.
CREATE TABLE webhooks (
	id              text COLLATE "C"        PRIMARY KEY,
	sealed_url      bytea       NOT NULL,
	url_host        text COLLATE "C"        NOT NULL,
	url_fingerprint text COLLATE "C"        NOT NULL,
	secret          bytea       NOT NULL,
	events          text[],
	format          text COLLATE "C"        NOT NULL,
	created_at      timestamptz NOT NULL,
	created_by      text COLLATE "C"        NOT NULL
);

-- deliveries: one notification for one webhook (the outbox). state is
-- pending, delivered or failed; attempts counts the attempts claimed;
-- next_at is when a pending one is due (NULL once none is).
-- lease_owner/lease_until: the dispatcher holding attempt number attempts,
-- until when ('' and NULL: no lease). No foreign key to webhooks: the log
-- outlives a removed webhook.
CREATE TABLE deliveries (
	id          text COLLATE "C"        PRIMARY KEY,
	webhook_id  text COLLATE "C"        NOT NULL,
	event       text COLLATE "C"        NOT NULL,
	payload     bytea       NOT NULL,
	state       text COLLATE "C"        NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
	attempts    integer     NOT NULL DEFAULT 0,
	next_at     timestamptz,
	lease_owner text COLLATE "C"        NOT NULL DEFAULT '',
	lease_until timestamptz,
	created_at  timestamptz NOT NULL,
	updated_at  timestamptz NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, created_at);
CREATE INDEX deliveries_created ON deliveries (created_at, id);

-- delivery_attempts: the log, one row per attempt made. status is the HTTP
-- status (0: none), error why it failed, state the delivery's state after
-- it, next_at the next attempt (NULL unless pending).
CREATE TABLE delivery_attempts (
	delivery_id text COLLATE "C"        NOT NULL REFERENCES deliveries (id),
	attempt     integer     NOT NULL,
	at          timestamptz NOT NULL,
	status      integer     NOT NULL,
	error       text COLLATE "C"        NOT NULL,
	state       text COLLATE "C"        NOT NULL,
	next_at     timestamptz,
	PRIMARY KEY (delivery_id, attempt)
);

-- Access requests (just-in-time access) and approver groups. state is
-- 'pending', 'approved', 'denied' or 'fetched' ("expired" is derived, never
-- stored); ttl_ms the lifetime of the token to issue, counted from
-- approval; requester the id of the request-only token that asked;
-- token_id the token issued at fetch ('' before). No token secret is ever
-- stored here.
CREATE TABLE access_requests (
	id          text COLLATE "C"        PRIMARY KEY,
	contractor  text COLLATE "C"        NOT NULL REFERENCES contractors (name),
	requester   text COLLATE "C"        NOT NULL,
	scopes      text[],
	ttl_ms      bigint      NOT NULL CHECK (ttl_ms > 0),
	reason      text COLLATE "C"        NOT NULL,
	state       text COLLATE "C"        NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'fetched')),
	created_at  timestamptz,
	expires_at  timestamptz,
	decided_by  text COLLATE "C"        NOT NULL,
	decided_at  timestamptz,
	deny_reason text COLLATE "C"        NOT NULL,
	token_id    text COLLATE "C"        NOT NULL,
	fetched_at  timestamptz
);
CREATE INDEX access_requests_by_contractor ON access_requests (contractor);

-- One row per distinct approver of a request: a second approval by the
-- same approver is a conflict, so it never counts twice.
CREATE TABLE request_approvals (
	request_id text COLLATE "C"        NOT NULL REFERENCES access_requests (id),
	approver   text COLLATE "C"        NOT NULL,
	token_id   text COLLATE "C"        NOT NULL,
	at         timestamptz,
	PRIMARY KEY (request_id, approver)
);

CREATE TABLE approvers (
	group_name text COLLATE "C"        NOT NULL,
	name       text COLLATE "C"        NOT NULL,
	created_at timestamptz,
	created_by text COLLATE "C"        NOT NULL,
	PRIMARY KEY (group_name, name)
);

-- policies: one row per level that sets anything: 'server' (name ''),
-- 'service' or 'contractor' (name = its name). Durations are milliseconds,
-- NULL when not set (inherited). approval is '', 'required' or 'none'.
CREATE TABLE policies (
	level          text COLLATE "C"   NOT NULL CHECK (level IN ('server', 'service', 'contractor')),
	name           text COLLATE "C"   NOT NULL,
	default_ttl_ms bigint CHECK (default_ttl_ms > 0),
	max_ttl_ms     bigint CHECK (max_ttl_ms > 0),
	idle_ms        bigint CHECK (idle_ms > 0),
	max_grant_ms   bigint CHECK (max_grant_ms > 0),
	approval       text COLLATE "C"   NOT NULL CHECK (approval IN ('', 'required', 'none')),
	updated_at     timestamptz,
	updated_by     text COLLATE "C"   NOT NULL,
	PRIMARY KEY (level, name),
	CHECK ((level = 'server') = (name = ''))
);

-- leases: named mutual exclusion between replicas (the sweeper's "sweep").
CREATE TABLE leases (
	name     text COLLATE "C"        PRIMARY KEY,
	holder   text COLLATE "C"        NOT NULL,
	until_at timestamptz NOT NULL
);

-- sweep_claims: one row per sweeper action taken, keyed by what it acts on.
CREATE TABLE sweep_claims (
	key        text COLLATE "C"        PRIMARY KEY,
	holder     text COLLATE "C"        NOT NULL,
	claimed_at timestamptz NOT NULL
);

-- The invalidation feed: one row for every committed change that can make
-- a token record cached by another process stale, appended in the
-- transaction of that change.
--   seq         1, 2, 3, ... in commit order: each writer takes the next
--               number from invalidation_seq, whose row it keeps locked
--               until it commits (a sequence would hand out numbers in
--               the order transactions start, not commit)
--   token_id    the token changed; '' for every token of contractor
--   contractor  the token's contractor ('' for an admin token), or the
--               contractor whose every token changed
--   at          when the row was written, by the writer's clock
CREATE TABLE invalidations (
	seq        bigint      PRIMARY KEY,
	token_id   text COLLATE "C"        NOT NULL,
	contractor text COLLATE "C"        NOT NULL,
	at         timestamptz NOT NULL
);
CREATE INDEX invalidations_at ON invalidations (at);

-- invalidation_seq: exactly one row, the largest seq ever appended (never
-- lowered by pruning).
CREATE TABLE invalidation_seq (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	last bigint  NOT NULL
);
INSERT INTO invalidation_seq (last) VALUES (0);
