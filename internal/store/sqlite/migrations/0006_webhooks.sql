-- Webhooks (package notify) and their outbox of deliveries.
--
-- webhooks: one row per configured endpoint. Its URL and signing secret
-- are kept only sealed (package seal), never in plain text: a URL's path or
-- query may itself be a credential (a Slack incoming webhook's is), and a
-- copy of the database alone must not reveal it.
--   sealed_url: the sealed URL, bound to the webhook id.
--   url_host: the URL's scheme and host ("https://hooks.slack.com"), in
--     clear, for listings; never its path or query.
--   url_fingerprint: the first 8 hex digits of the SHA-256 of the full
--     URL, to tell apart two webhooks on one host.
--   secret: the sealed signing secret, bound to the webhook id.
--   events: a JSON array of event types, NULL for all.
--   format: 'standard' or 'slack'.
-- Times are unix ms.
CREATE TABLE webhooks (
	id              TEXT PRIMARY KEY,
	sealed_url      BLOB NOT NULL,
	url_host        TEXT NOT NULL,
	url_fingerprint TEXT NOT NULL,
	secret          BLOB NOT NULL,
	events          TEXT,
	format          TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	created_by      TEXT NOT NULL
);

-- deliveries: one notification for one webhook. id is the webhook-id
-- header; payload the exact body. state is pending, delivered or failed;
-- attempts counts the attempts claimed; next_at is when a pending one is
-- due. lease_owner/lease_until: the dispatcher holding attempt number
-- attempts, until when (0: no lease). No foreign key to webhooks: the log
-- outlives a removed webhook.
CREATE TABLE deliveries (
	id          TEXT PRIMARY KEY,
	webhook_id  TEXT NOT NULL,
	event       TEXT NOT NULL,
	payload     BLOB NOT NULL,
	state       TEXT NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	next_at     INTEGER NOT NULL,
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (state, next_at);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, created_at);
CREATE INDEX deliveries_created ON deliveries (created_at, id);

-- delivery_attempts: the log, one row per attempt made. status is the HTTP
-- status (0: none), error why it failed, state the delivery's state after
-- it, next_at the next attempt (NULL unless pending).
CREATE TABLE delivery_attempts (
	delivery_id TEXT NOT NULL REFERENCES deliveries (id),
	attempt     INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	status      INTEGER NOT NULL,
	error       TEXT NOT NULL,
	state       TEXT NOT NULL,
	next_at     INTEGER,
	PRIMARY KEY (delivery_id, attempt)
);
