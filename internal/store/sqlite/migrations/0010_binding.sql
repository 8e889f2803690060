-- Proof-of-possession binding of a token (RFC 9449 DPoP, RFC 8705 mTLS),
-- as the token's confirmation claim would carry it: cnf_jkt is the RFC
-- 7638 SHA-256 thumbprint of the DPoP public key, cnf_x5t the SHA-256
-- thumbprint of the client certificate (x5t#S256), each base64url without
-- padding; '' when the token is not bound that way. At most one is set.
ALTER TABLE tokens ADD COLUMN cnf_jkt TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN cnf_x5t TEXT NOT NULL DEFAULT '';
