-- The token a contractor narrowed this token from (self-service
-- derivation), '' if none. Not "parent", which is the rotation link.
-- Revoking a token revokes every token derived from it, so the children
-- of a token are looked up by this column.
ALTER TABLE tokens ADD COLUMN derived_from TEXT NOT NULL DEFAULT '';
CREATE INDEX tokens_derived_from ON tokens (derived_from) WHERE derived_from != '';
