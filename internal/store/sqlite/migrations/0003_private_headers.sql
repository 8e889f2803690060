-- Request headers a service marks as hop-private: the gateway removes them
-- from every request it forwards to that service. A JSON array of
-- canonical header names, or NULL for none.
ALTER TABLE services ADD COLUMN private_headers TEXT;
