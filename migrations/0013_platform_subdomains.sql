-- Platform subdomains (LANDLORD_PLATFORM_DOMAIN): every site is served at
-- `<slug>.<platform domain>`. Slugs are one namespace across tenants; sites created before
-- get their name with a short suffix (the tenant can choose another).
ALTER TABLE sites ADD COLUMN slug text;
UPDATE sites SET slug = rtrim(left(name, 54), '-') || '-' || left(md5(id::text), 8);
ALTER TABLE sites ALTER COLUMN slug SET NOT NULL;
ALTER TABLE sites ADD CONSTRAINT sites_slug_unique UNIQUE (slug);

-- A suspended tenant's sites are held too (its custom domains are, through domains.held),
-- so no edge serves them under the platform domain either.
ALTER TABLE sites ADD COLUMN held boolean NOT NULL DEFAULT false;
UPDATE sites s SET held = true FROM tenants t WHERE t.id = s.tenant_id AND t.suspended_at IS NOT NULL;

-- The tenant that owns the platform's own wildcard registration (`*.<platform domain>`):
-- at most one, created by the worker.
ALTER TABLE tenants ADD COLUMN platform boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX tenants_one_platform ON tenants (platform) WHERE platform;

DROP TRIGGER sites_changes ON sites;
CREATE TRIGGER sites_changes
    AFTER INSERT OR DELETE OR UPDATE OF live_deployment_id, canonical_hostname, slug, held ON sites
    FOR EACH ROW EXECUTE FUNCTION landlord_record_change();
