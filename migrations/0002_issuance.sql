-- Issuance: certificates, ACME accounts and challenges, the local CA, and the worker's
-- bookkeeping for orders in flight.

-- The certificate currently served for a domain (one per domain; renewal replaces it in
-- one statement, so an edge never sees a domain without one once it had one).
CREATE TABLE certificates (
    domain_id      uuid PRIMARY KEY REFERENCES domains (id) ON DELETE CASCADE,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hostname       text NOT NULL UNIQUE,
    -- leaf first, then intermediates, PEM
    chain_pem      text NOT NULL,
    -- PKCS#8 private key, sealed with AES-256-GCM under LANDLORD_MASTER_KEY
    -- (format: version byte, 8-byte key id, 12-byte nonce, ciphertext+tag)
    key_sealed     bytea NOT NULL,
    not_before     timestamptz NOT NULL,
    not_after      timestamptz NOT NULL,
    serial         text NOT NULL,
    issuer         text NOT NULL,
    renew_at       timestamptz NOT NULL,
    issued_by      text NOT NULL,      -- 'acme' | 'local'
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX certificates_renew_at ON certificates (renew_at);

-- One ACME account per directory URL, shared by all tenants (Let's Encrypt's guidance
-- for hosting providers). Credentials (they hold the account key) are sealed.
CREATE TABLE acme_accounts (
    directory_url      text PRIMARY KEY,
    credentials_sealed bytea NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- HTTP-01 challenges in flight: written before the challenge is marked ready, so any
-- edge node can answer the CA.
CREATE TABLE acme_challenges (
    token             text PRIMARY KEY,
    domain_id         uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    hostname          text NOT NULL,
    key_authorization text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acme_challenges_domain ON acme_challenges (domain_id);

-- The local CA used by LANDLORD_ISSUER=local (dev): created once, key sealed.
CREATE TABLE local_ca (
    id         integer PRIMARY KEY CHECK (id = 1),
    cert_pem   text NOT NULL,
    key_sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Worker bookkeeping: the order in flight (reused after a crash) and its sealed key,
-- consecutive CA failures (for issuing → failed) and consecutive "not pointed" checks of
-- a verified domain (for active → moved).
ALTER TABLE domains
    ADD COLUMN order_url        text,
    ADD COLUMN order_key_sealed bytea,
    ADD COLUMN ca_failures      integer NOT NULL DEFAULT 0,
    ADD COLUMN dns_misses       integer NOT NULL DEFAULT 0;

CREATE INDEX domains_claimable ON domains (next_attempt_at) WHERE lease_owner IS NULL;

-- Certificates are changes the edges must see.
CREATE OR REPLACE FUNCTION landlord_record_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    s bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'domains' THEN
        INSERT INTO changes (entity, tenant_id, hostname)
        VALUES ('domain', r.tenant_id, r.hostname) RETURNING seq INTO s;
        IF TG_OP = 'UPDATE' AND OLD.hostname <> NEW.hostname THEN
            INSERT INTO changes (entity, tenant_id, hostname)
            VALUES ('domain', OLD.tenant_id, OLD.hostname) RETURNING seq INTO s;
        END IF;
    ELSIF TG_TABLE_NAME = 'certificates' THEN
        INSERT INTO changes (entity, tenant_id, hostname)
        VALUES ('certificate', r.tenant_id, r.hostname) RETURNING seq INTO s;
    ELSE
        INSERT INTO changes (entity, tenant_id, path)
        VALUES ('file', r.tenant_id, r.path) RETURNING seq INTO s;
    END IF;
    PERFORM pg_notify('landlord_changes', s::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER certificates_changes AFTER INSERT OR UPDATE OR DELETE ON certificates
    FOR EACH ROW EXECUTE FUNCTION landlord_record_change();

-- The dashboard's timeline updates live: every event is announced.
CREATE FUNCTION landlord_announce_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('landlord_events', NEW.tenant_id::text || ' ' || NEW.domain_id::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_announce AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION landlord_announce_event();
