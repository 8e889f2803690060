-- Webhook URLs sealed (package seal), like their signing secrets: a URL's
-- path or query may itself be a credential (a Slack incoming webhook's
-- is), and a copy of the database alone must not reveal it.
--
-- sealed_url: the sealed URL, bound to the webhook id. NULL for a row
--   written before this version: its URL is still in url, in plain text.
--   The store has no key and cannot seal it here; the notifier does, at
--   startup (notify.Reseal, run by serve), through SealWebhookURL, which
--   empties url in the same statement. Nothing is lost meanwhile: such a
--   row is delivered to and listed (masked) from url.
-- url: '' for every row written from this version on.
-- url_host: the URL's scheme and host ("https://hooks.slack.com"), in
--   clear, for listings; never its path or query. '' until sealed.
-- url_fingerprint: the first 8 hex digits of the SHA-256 of the full URL,
--   to tell apart two webhooks on one host. '' until sealed.
ALTER TABLE webhooks ADD COLUMN sealed_url BLOB;
ALTER TABLE webhooks ADD COLUMN url_host TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN url_fingerprint TEXT NOT NULL DEFAULT '';
