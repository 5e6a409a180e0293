-- Takeover-proof claims and operator controls.

-- A DNS target per registration: `<target_label>.<LANDLORD_CNAME_TARGET>`, 80 random bits,
-- never reused (a dangling CNAME left by a deleted registration names a label no later
-- registration gets). Domains registered before this migration keep verifying through
-- the bare shared target too (`shared_target_ok`), so none of them has an outage.
ALTER TABLE domains
    ADD COLUMN target_label text NOT NULL DEFAULT substr(md5(gen_random_uuid()::text), 1, 20),
    ADD COLUMN shared_target_ok boolean NOT NULL DEFAULT false,
    -- The TXT ownership proof for names pointed with A/AAAA records: the value is fresh
    -- per registration; once verified it may be removed.
    ADD COLUMN ownership_token text NOT NULL DEFAULT substr(md5(gen_random_uuid()::text), 1, 32),
    ADD COLUMN ownership_verified_at timestamptz,
    -- Why the domain is not served, issued or renewed: its tenant is suspended, or an
    -- operator blocked the hostname. NULL: normal.
    ADD COLUMN held text CHECK (held IN ('suspended', 'blocked'));
UPDATE domains SET shared_target_ok = true, ownership_verified_at = now();
CREATE UNIQUE INDEX domains_target_label ON domains (target_label);

-- A claim on a hostname another tenant holds: the claimant's own TXT value, and when the
-- API last looked it up (claim lookups are rate-limited like "check now").
CREATE TABLE claims (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hostname   text NOT NULL,
    token      text NOT NULL DEFAULT substr(md5(gen_random_uuid()::text), 1, 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    checked_at timestamptz,
    PRIMARY KEY (tenant_id, hostname)
);

ALTER TABLE tenants
    ADD COLUMN suspended_at     timestamptz,
    ADD COLUMN suspended_reason text;

-- Hostnames no tenant may register, exactly or with every name below them.
CREATE TABLE blocked_hostnames (
    hostname   text PRIMARY KEY,
    subdomains boolean NOT NULL,
    reason     text NOT NULL,
    operator   text,
    at         timestamptz NOT NULL DEFAULT now()
);

-- What operators did, with when, why and who.
CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    action   text NOT NULL,
    subject  text NOT NULL,
    reason   text NOT NULL,
    operator text
);

-- The tenant's own log, which outlives its domains (a hostname claimed away, a
-- suspension). NOTIFY landlord_tenant_events "<tenant> <id>" for its live stream.
CREATE TABLE tenant_events (
    id        bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    kind      text NOT NULL,
    message   text NOT NULL
);
CREATE INDEX tenant_events_tenant ON tenant_events (tenant_id, id DESC);

CREATE FUNCTION landlord_announce_tenant_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('landlord_tenant_events', NEW.tenant_id::text || ' ' || NEW.id::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER tenant_events_announce AFTER INSERT ON tenant_events
    FOR EACH ROW EXECUTE FUNCTION landlord_announce_tenant_event();

-- A held domain is not served: edges must hear of it.
DROP TRIGGER domains_changes ON domains;
CREATE TRIGGER domains_changes
    AFTER INSERT OR DELETE OR UPDATE OF status, hostname, tenant_id, held ON domains
    FOR EACH ROW EXECUTE FUNCTION landlord_record_change();
DROP TRIGGER domains_announce ON domains;
CREATE TRIGGER domains_announce
    AFTER INSERT OR DELETE OR UPDATE OF status, checked_at, check_problem, last_error, queued_reason, held ON domains
    FOR EACH ROW EXECUTE FUNCTION landlord_announce_domain();
