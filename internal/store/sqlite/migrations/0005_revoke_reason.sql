-- Why a token was revoked: one of the store.Revoke* reason words
-- ("manual", "idle", "engagement_ended", "leaked", "offboarded",
-- "parent_revoked"); '' on unrevoked tokens and on tokens revoked before
-- this migration.
ALTER TABLE tokens ADD COLUMN revoked_reason TEXT NOT NULL DEFAULT '';
