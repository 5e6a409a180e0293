-- A deploy asked to go live waits for its compressed variants (the worker computes them
-- once, off the request path): it is the site's `activating` deploy until the last of
-- its compressible bodies has variants, or until the wait runs out, and then becomes
-- the live one in one update. Edges never see it before.
ALTER TABLE sites
    ADD COLUMN activating_deployment_id uuid REFERENCES deployments (id) ON DELETE SET NULL,
    ADD COLUMN activating_since timestamptz;
-- Who made a deploy: the display prefix of the API key that uploaded it (null for changes
-- through /v1/files and deploys from before this column).
ALTER TABLE deployments ADD COLUMN created_by text;
CREATE INDEX sites_activating ON sites (activating_since) WHERE activating_deployment_id IS NOT NULL;
