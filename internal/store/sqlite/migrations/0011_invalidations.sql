-- The invalidation feed: one row for every committed change that can make
-- a token record cached by another process stale (revocation, a moved
-- expiry, offboarding, an engagement's end), appended in the transaction
-- of that change. Processes sharing the database read it to drop what
-- they cached (package access, Authority.Follow).
--   seq         increases by one per row, in commit order (AUTOINCREMENT
--               never reuses a seq, even after pruning)
--   token_id    the token changed; '' for every token of contractor
--   contractor  the token's contractor ('' for an admin token), or the
--               contractor whose every token changed
--   at          unix milliseconds, by the writer's clock, when the row was
--               written; rows older than an hour are pruned
CREATE TABLE invalidations (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	token_id   TEXT NOT NULL,
	contractor TEXT NOT NULL,
	at         INTEGER NOT NULL
) STRICT;
CREATE INDEX invalidations_at ON invalidations (at);
