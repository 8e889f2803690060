-- 0006_policy: token policy, sweeper leases and claims, expiry notices.
-- tokens.revoked_reason may now also be 'rotated' (store.RevokeRotated).
--
-- policies holds one row per level that sets anything: level 'server'
-- (name ''), 'service' (name = service name) or 'contractor' (name =
-- contractor name). Every duration column is INTEGER milliseconds, NULL
-- when the level does not set it (it inherits). approval is '' (inherit),
-- 'required' or 'none'. A level that sets nothing has no row.
CREATE TABLE policies (
	level          TEXT    NOT NULL CHECK (level IN ('server', 'service', 'contractor')),
	name           TEXT    NOT NULL,
	default_ttl_ms INTEGER CHECK (default_ttl_ms > 0),
	max_ttl_ms     INTEGER CHECK (max_ttl_ms > 0),
	idle_ms        INTEGER CHECK (idle_ms > 0),
	max_grant_ms   INTEGER CHECK (max_grant_ms > 0),
	approval       TEXT    NOT NULL CHECK (approval IN ('', 'required', 'none')),
	updated_at     INTEGER,
	updated_by     TEXT    NOT NULL,
	PRIMARY KEY (level, name),
	CHECK ((level = 'server') = (name = ''))
) STRICT, WITHOUT ROWID;

-- leases: named mutual exclusion between replicas sharing the database
-- (the sweeper's "sweep" lease). holder owns name until until_at (unix ms).
CREATE TABLE leases (
	name     TEXT    PRIMARY KEY NOT NULL,
	holder   TEXT    NOT NULL,
	until_at INTEGER NOT NULL
) STRICT;

-- sweep_claims: one row per sweeper action taken, keyed by what it acts on
-- (say "revoke:TOKENID"), so that of two replicas only the one that claims
-- first audits and acts. claimed_at is unix ms.
CREATE TABLE sweep_claims (
	key        TEXT    PRIMARY KEY NOT NULL,
	holder     TEXT    NOT NULL,
	claimed_at INTEGER NOT NULL
) STRICT;

-- expiry_noticed_at: when the expiring-soon notice of the token was
-- claimed (unix ms); NULL while none was sent.
ALTER TABLE tokens ADD COLUMN expiry_noticed_at INTEGER;

-- Successors by the token they rotated from, for finishing rotations.
CREATE INDEX tokens_by_parent ON tokens (parent) WHERE parent <> '';
