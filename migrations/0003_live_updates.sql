-- Live updates for the dashboard: every visible change to a domain (status, check
-- result, error, certificate) is announced on landlord_domains with the tenant, the
-- domain id and the operation, so the API can stream it to that tenant only.

CREATE FUNCTION landlord_announce_domain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    op text;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    op := CASE WHEN TG_OP = 'DELETE' AND TG_TABLE_NAME = 'domains' THEN 'deleted' ELSE 'changed' END;
    IF TG_TABLE_NAME = 'domains' THEN
        PERFORM pg_notify('landlord_domains', r.tenant_id::text || ' ' || r.id::text || ' ' || op);
    ELSE
        PERFORM pg_notify('landlord_domains', r.tenant_id::text || ' ' || r.domain_id::text || ' ' || op);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER domains_announce
    AFTER INSERT OR DELETE OR UPDATE OF status, checked_at, check_problem, last_error ON domains
    FOR EACH ROW EXECUTE FUNCTION landlord_announce_domain();
CREATE TRIGGER certificates_announce AFTER INSERT OR UPDATE ON certificates
    FOR EACH ROW EXECUTE FUNCTION landlord_announce_domain();
