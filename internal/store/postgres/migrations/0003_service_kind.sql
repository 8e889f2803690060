-- The kind of a service when its upstream URL's scheme does not say it:
-- '' for HTTP and PostgreSQL services (told apart by the scheme, as
-- before), 'kubernetes' for a Kubernetes API server (an https URL whose
-- requests the gateway forwards with impersonation headers).
ALTER TABLE services ADD COLUMN kind text COLLATE "C" NOT NULL DEFAULT '' CHECK (octet_length(kind) <= 32);
