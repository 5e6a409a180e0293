-- Several API keys per tenant, each with an optional name, listed and revoked over the API.
-- Revocation is a timestamp (the row stays, so an operator can still tell which key it
-- was); authentication ignores revoked keys, so a revocation holds at once on every API
-- process. last_used_at is refreshed at most once a minute.
ALTER TABLE api_keys ADD COLUMN name text CHECK (length(name) <= 100);
CREATE INDEX api_keys_live ON api_keys (tenant_id) WHERE revoked_at IS NULL;
