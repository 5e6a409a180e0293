-- Pages compressed once: Brotli, gzip and zstd bodies of compressible files, computed by a
-- worker after the file is stored (never on an edge's request path) and kept beside it.
-- `variants_etag` is the etag the variants were computed for: NULL or another etag means
-- "not yet" (the edge serves the identity body meanwhile); equal with no variant means
-- "not worth compressing". `variants_claimed_at` is a worker's claim on the job (a crashed
-- worker's claim goes stale and another takes the file).
ALTER TABLE files
    ADD COLUMN body_br             bytea,
    ADD COLUMN body_gzip           bytea,
    ADD COLUMN body_zstd           bytea,
    ADD COLUMN variants_etag       text,
    ADD COLUMN variants_claimed_at timestamptz;

CREATE INDEX files_uncompressed ON files (updated_at) WHERE variants_etag IS DISTINCT FROM etag;

-- A claim is worker bookkeeping, not a change an edge must hear of.
DROP TRIGGER files_changes ON files;
CREATE TRIGGER files_changes
    AFTER INSERT OR DELETE OR UPDATE OF content_type, body, etag, variants_etag ON files
    FOR EACH ROW EXECUTE FUNCTION landlord_record_change();
