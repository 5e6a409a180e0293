-- Sites and immutable deploys.
--
-- A tenant has sites; each domain belongs to one site. A site's files are deploys: a
-- deploy is an immutable set of (path → blob), and the site's live deploy is one column,
-- so an edge switches a site from one deploy to another in one step. Bodies are stored
-- once per tenant, content-addressed (`blobs`, keyed by SHA-256): a file unchanged between
-- deploys costs nothing more. Every tenant has a default site; `/v1/files` edits its live
-- deploy (a new deploy made of the live one plus the change).

CREATE TABLE sites (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               text NOT NULL,
    is_default         boolean NOT NULL DEFAULT false,
    canonical_hostname text,
    live_deployment_id uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sites_name_unique UNIQUE (tenant_id, name)
);
CREATE UNIQUE INDEX sites_one_default ON sites (tenant_id) WHERE is_default;

-- A body of the tenant's, with the compressed variants a worker computes once
-- (`variants_done`; see 0008, which kept them on `files`).
CREATE TABLE blobs (
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sha256              bytea NOT NULL,
    size                bigint NOT NULL,
    body                bytea NOT NULL,
    -- a compressible type was stored with these bytes (decides whether variants are tried)
    compressible        boolean NOT NULL,
    body_br             bytea,
    body_gzip           bytea,
    body_zstd           bytea,
    variants_done       boolean NOT NULL DEFAULT false,
    variants_claimed_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sha256)
);
CREATE INDEX blobs_uncompressed ON blobs (created_at) WHERE NOT variants_done;

CREATE TABLE deployments (
    id         uuid PRIMARY KEY,
    site_id    uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- what made it: 'files' (a PUT or DELETE on /v1/files), 'upload', 'migration'
    source     text NOT NULL,
    file_count integer NOT NULL DEFAULT 0,
    bytes      bigint NOT NULL DEFAULT 0
);
CREATE INDEX deployments_site ON deployments (site_id, created_at DESC);

CREATE TABLE deployment_files (
    deployment_id uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    path          text NOT NULL,
    tenant_id     uuid NOT NULL,
    sha256        bytea NOT NULL,
    content_type  text NOT NULL,
    size          bigint NOT NULL,
    -- when this path last got these bytes (kept when a deploy is copied from another)
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, path),
    FOREIGN KEY (tenant_id, sha256) REFERENCES blobs (tenant_id, sha256)
);
CREATE INDEX deployment_files_blob ON deployment_files (tenant_id, sha256);

ALTER TABLE sites ADD CONSTRAINT sites_live_deployment
    FOREIGN KEY (live_deployment_id) REFERENCES deployments (id);

-- Today's files become each tenant's default site, live.
INSERT INTO sites (id, tenant_id, name, is_default)
    SELECT gen_random_uuid(), id, 'default', true FROM tenants;
INSERT INTO blobs (tenant_id, sha256, size, body, compressible, body_br, body_gzip, body_zstd,
                   variants_done)
    SELECT DISTINCT ON (tenant_id, decode(btrim(etag, '"'), 'hex'))
           tenant_id, decode(btrim(etag, '"'), 'hex'), size, body, compressible,
           CASE WHEN variants_etag = etag THEN body_br END,
           CASE WHEN variants_etag = etag THEN body_gzip END,
           CASE WHEN variants_etag = etag THEN body_zstd END,
           COALESCE(variants_etag = etag, false) OR NOT compressible
    FROM (SELECT *,
                 -- landlord_store::compressible, as SQL: text, scripts, JSON, XML, SVG,
                 -- WebAssembly, uncompressed fonts, 256 bytes or more
                 size >= 256 AND lower(split_part(content_type, ';', 1)) ~
                   '^\s*(text/.*|application/(javascript|ecmascript|json|xml|wasm|manifest\+json|x-javascript|vnd\.ms-fontobject|x-font-ttf|x-font-opentype|.*\+json|.*\+xml)|image/(svg\+xml|x-icon|vnd\.microsoft\.icon|bmp)|font/(ttf|otf|sfnt|collection))\s*$'
                   AS compressible
          FROM files) f
    ORDER BY tenant_id, decode(btrim(etag, '"'), 'hex');
INSERT INTO deployments (id, site_id, tenant_id, source, file_count, bytes)
    SELECT gen_random_uuid(), s.id, s.tenant_id, 'migration', f.n, f.bytes
    FROM sites s JOIN (SELECT tenant_id, count(*) AS n, sum(size) AS bytes FROM files
                       GROUP BY tenant_id) f ON f.tenant_id = s.tenant_id;
INSERT INTO deployment_files (deployment_id, path, tenant_id, sha256, content_type, size,
                              updated_at)
    SELECT d.id, f.path, f.tenant_id, decode(btrim(f.etag, '"'), 'hex'), f.content_type, f.size,
           f.updated_at
    FROM files f JOIN deployments d ON d.tenant_id = f.tenant_id;
UPDATE sites s SET live_deployment_id = d.id FROM deployments d WHERE d.site_id = s.id;

ALTER TABLE domains ADD COLUMN site_id uuid REFERENCES sites (id);
UPDATE domains d SET site_id = s.id FROM sites s WHERE s.tenant_id = d.tenant_id AND s.is_default;
ALTER TABLE domains ALTER COLUMN site_id SET NOT NULL;
CREATE INDEX domains_site ON domains (site_id);

DROP TABLE files;

-- The change log names sites (their live deploy or canonical name changed) and blobs
-- (their variants were computed: `path` carries the hex SHA-256).
ALTER TABLE changes ADD COLUMN site_id uuid;

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
    ELSIF TG_TABLE_NAME = 'sites' THEN
        INSERT INTO changes (entity, tenant_id, site_id)
        VALUES ('site', r.tenant_id, r.id) RETURNING seq INTO s;
    ELSE
        INSERT INTO changes (entity, tenant_id, path)
        VALUES ('blob', r.tenant_id, encode(r.sha256, 'hex')) RETURNING seq INTO s;
    END IF;
    PERFORM pg_notify('landlord_changes', s::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER sites_changes
    AFTER INSERT OR DELETE OR UPDATE OF live_deployment_id, canonical_hostname ON sites
    FOR EACH ROW EXECUTE FUNCTION landlord_record_change();
CREATE TRIGGER blobs_changes AFTER UPDATE OF variants_done ON blobs
    FOR EACH ROW WHEN (NEW.variants_done) EXECUTE FUNCTION landlord_record_change();
DROP TRIGGER domains_changes ON domains;
CREATE TRIGGER domains_changes
    AFTER INSERT OR DELETE OR UPDATE OF status, hostname, tenant_id, held, site_id ON domains
    FOR EACH ROW EXECUTE FUNCTION landlord_record_change();
DROP TRIGGER domains_announce ON domains;
CREATE TRIGGER domains_announce
    AFTER INSERT OR DELETE OR UPDATE OF status, checked_at, check_problem, last_error, queued_reason, held, site_id ON domains
    FOR EACH ROW EXECUTE FUNCTION landlord_announce_domain();
