-- Edges answer HTTP-01 from memory: they learn from the change log which hostnames have
-- an ACME order in flight (so the CA may come for a challenge) and which challenges are
-- published, and query PostgreSQL for nothing else a stranger asks on port 80.

CREATE OR REPLACE FUNCTION landlord_record_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    s bigint;
    t uuid;
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
    ELSIF TG_TABLE_NAME = 'acme_challenges' THEN
        -- The domain is gone already when its deletion cascades here: the nil tenant.
        SELECT tenant_id INTO t FROM domains WHERE id = r.domain_id;
        INSERT INTO changes (entity, tenant_id, hostname)
        VALUES ('challenge', COALESCE(t, '00000000-0000-0000-0000-000000000000'), r.hostname)
        RETURNING seq INTO s;
    ELSE
        INSERT INTO changes (entity, tenant_id, path)
        VALUES ('file', r.tenant_id, r.path) RETURNING seq INTO s;
    END IF;
    PERFORM pg_notify('landlord_changes', s::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER acme_challenges_changes AFTER INSERT OR UPDATE OR DELETE ON acme_challenges
    FOR EACH ROW EXECUTE FUNCTION landlord_record_change();

-- An order placed or finished changes whether the edges expect the CA.
CREATE TRIGGER domains_order_changes AFTER UPDATE OF order_url ON domains
    FOR EACH ROW WHEN ((OLD.order_url IS NULL) <> (NEW.order_url IS NULL))
    EXECUTE FUNCTION landlord_record_change();
