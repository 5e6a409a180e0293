-- A deploy's site rules, parsed from its `_redirects` and `_headers` when it is made (a
-- malformed line refuses the deploy), so edges read them with the deploy, never parse.
ALTER TABLE deployments ADD COLUMN rules jsonb NOT NULL DEFAULT '{}';
