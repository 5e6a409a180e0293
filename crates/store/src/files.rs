//! The default site's files, one at a time (`/v1/files`), and the bodies edges serve.
//!
//! Every tenant has a default site; a `PUT` or `DELETE` here makes a new deploy of it from
//! the live one plus that change, live at once (cheap: bodies are content-addressed, so only
//! rows are copied). Deploys made this way keep no history of their own: the one replaced
//! is dropped unless it was an uploaded deploy.

use time::OffsetDateTime;

use crate::limits::{Limit, TenantLimits, lock_tenant};
use crate::sites::{
    Activation, NewFile, SiteName, activate_ready, check_quota, finish_deployment,
    insert_deployment, insert_site, put_row, stored_bytes, switch_to,
};
use crate::{DeploymentId, FilePath, Page, Result, SiteId, Store, StoreError, TenantId};

/// A file without its body.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileMeta {
    pub path: String,
    pub size: i64,
    pub content_type: String,
    pub etag: String,
    pub updated_at: OffsetDateTime,
}

/// A file with its body, for serving.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredFile {
    pub content_type: String,
    pub etag: String,
    pub body: Vec<u8>,
    /// The precompressed bodies, once a worker computed them (each only when smaller than
    /// the identity body).
    #[sqlx(flatten)]
    pub variants: Variants,
}

/// A body's compressed forms.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Variants {
    #[sqlx(rename = "body_br")]
    pub br: Option<Vec<u8>>,
    #[sqlx(rename = "body_gzip")]
    pub gzip: Option<Vec<u8>>,
    #[sqlx(rename = "body_zstd")]
    pub zstd: Option<Vec<u8>>,
}

/// A body whose variants are to be computed (claimed by one worker).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Uncompressed {
    pub tenant_id: TenantId,
    pub sha256: Vec<u8>,
    pub body: Vec<u8>,
}

/// NOTIFY channel that wakes workers when a body needs its variants.
pub const COMPRESS_CHANNEL: &str = "landlord_compress";
/// Smaller bodies are not compressed (headers and framing dominate).
pub const MIN_COMPRESS_BYTES: usize = 256;

/// Whether bodies of `content_type` shrink when compressed (text, scripts, JSON, XML,
/// SVG, WebAssembly, uncompressed fonts; not images, archives or WOFF fonts).
pub fn compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (kind, sub) = essence.split_once('/').unwrap_or((&essence, ""));
    match kind {
        "text" => true,
        "application" => {
            matches!(
                sub,
                "javascript"
                    | "ecmascript"
                    | "json"
                    | "xml"
                    | "wasm"
                    | "manifest+json"
                    | "x-javascript"
                    | "vnd.ms-fontobject"
                    | "x-font-ttf"
                    | "x-font-opentype"
            ) || sub.ends_with("+json")
                || sub.ends_with("+xml")
        }
        "image" => matches!(sub, "svg+xml" | "x-icon" | "vnd.microsoft.icon" | "bmp"),
        "font" => matches!(sub, "ttf" | "otf" | "sfnt" | "collection"),
        _ => false,
    }
}

/// The columns of [`FileMeta`] from `deployment_files f`, as a macro so queries stay
/// `&'static str`.
macro_rules! file_meta {
    () => {
        "SELECT f.path, f.size, f.content_type, \
             '\"' || encode(f.sha256, 'hex') || '\"' AS etag, f.updated_at "
    };
}

impl Store {
    /// Create or replace a file of the default site: a new deploy, live at once. The limit
    /// checks and the write happen in one transaction that holds the tenant's row lock, so
    /// concurrent uploads cannot overshoot a limit. The caller enforces `max_file_bytes`
    /// before reading the whole body.
    pub async fn put_file(
        &self,
        tenant: TenantId,
        path: &FilePath,
        content_type: &str,
        body: &[u8],
        limits: TenantLimits,
    ) -> Result<FileMeta> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let (site, live) = default_site(&mut tx, tenant).await?;
        let (others, exists): (i64, bool) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE path <> $2), bool_or(path = $2) IS TRUE \
             FROM deployment_files WHERE deployment_id = $1",
        )
        .bind(live)
        .bind(path.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if others >= limits.max_files && !exists {
            return Err(StoreError::LimitReached {
                limit: Limit::Files,
                max: limits.max_files,
            });
        }
        let before = stored_bytes(&mut tx, tenant).await?;
        let id = next_files_deployment(&mut tx, tenant, site, live, path).await?;
        let file = NewFile {
            path: path.clone(),
            content_type: content_type.to_owned(),
            body: body.to_vec(),
        };
        put_row(&mut tx, tenant, id, &file).await?;
        finish_files_deployment(&mut tx, tenant, site, id, live, limits.kept_deployments).await?;
        check_quota(&mut tx, tenant, before, limits).await?;
        let meta = sqlx::query_as::<_, FileMeta>(concat!(
            file_meta!(),
            "FROM deployment_files f WHERE f.deployment_id = $1 AND f.path = $2"
        ))
        .bind(id)
        .bind(path.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(meta)
    }

    /// The default site's live files by path, `limit` at a time after the path `cursor`.
    pub async fn list_files(
        &self,
        tenant: TenantId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<FileMeta, String>> {
        const SQL: &str = concat!(
            file_meta!(),
            "FROM sites s JOIN deployment_files f ON f.deployment_id = s.live_deployment_id \
             WHERE s.tenant_id = $1 AND s.is_default AND ($2::text IS NULL OR f.path > $2) \
             ORDER BY f.path LIMIT $3"
        );
        self.page(
            SQL,
            tenant,
            cursor.map(str::to_owned),
            limit,
            |f: &FileMeta| f.path.clone(),
        )
        .await
    }

    /// Delete one of the default site's files (a new deploy without it, live at once);
    /// false when there was none at that path.
    pub async fn delete_file(&self, tenant: TenantId, path: &FilePath, keep: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let (site, live) = default_site(&mut tx, tenant).await?;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM deployment_files WHERE deployment_id = $1 AND path = $2)",
        )
        .bind(live)
        .bind(path.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if !exists {
            return Ok(false);
        }
        let id = next_files_deployment(&mut tx, tenant, site, live, path).await?;
        finish_files_deployment(&mut tx, tenant, site, id, live, keep).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A file of a deploy with its body, for serving.
    pub async fn get_file(
        &self,
        deployment: DeploymentId,
        path: &FilePath,
    ) -> Result<Option<StoredFile>> {
        self.first_file(deployment, &[path.as_str().to_owned()])
            .await
    }

    /// The first of `paths` (stored form) that a deploy has, with its body, in one query.
    pub async fn first_file(
        &self,
        deployment: DeploymentId,
        paths: &[String],
    ) -> Result<Option<StoredFile>> {
        Ok(sqlx::query_as::<_, StoredFile>(
            "SELECT f.content_type, '\"' || encode(b.sha256, 'hex') || '\"' AS etag, b.body, \
                 b.body_br, b.body_gzip, b.body_zstd \
             FROM deployment_files f \
             JOIN blobs b ON b.tenant_id = f.tenant_id AND b.sha256 = f.sha256 \
             WHERE f.deployment_id = $1 AND f.path = ANY($2) \
             ORDER BY array_position($2, f.path) LIMIT 1",
        )
        .bind(deployment)
        .bind(paths)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Claim the oldest body still without its variants, unless another worker claimed it
    /// less than `stale` ago.
    pub async fn claim_uncompressed(
        &self,
        stale: std::time::Duration,
    ) -> Result<Option<Uncompressed>> {
        Ok(sqlx::query_as::<_, Uncompressed>(
            "UPDATE blobs b SET variants_claimed_at = now() FROM ( \
                 SELECT tenant_id, sha256 FROM blobs \
                 WHERE NOT variants_done \
                   AND (variants_claimed_at IS NULL \
                        OR variants_claimed_at < now() - make_interval(secs => $1)) \
                 ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) due \
             WHERE b.tenant_id = due.tenant_id AND b.sha256 = due.sha256 \
             RETURNING b.tenant_id, b.sha256, b.body",
        )
        .bind(stale.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Store the variants computed for `blob` (edges hear of it through the change log)
    /// and make live the deploys that waited only for them; false when no deploy uses the
    /// body any more.
    pub async fn store_variants(&self, blob: &Uncompressed, variants: &Variants) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE blobs SET body_br = $3, body_gzip = $4, body_zstd = $5, \
                 variants_done = true, variants_claimed_at = NULL \
             WHERE tenant_id = $1 AND sha256 = $2",
        )
        .bind(blob.tenant_id)
        .bind(&blob.sha256)
        .bind(variants.br.as_deref())
        .bind(variants.gzip.as_deref())
        .bind(variants.zstd.as_deref())
        .execute(&mut *tx)
        .await?;
        activate_ready(&mut tx, None).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}

/// The tenant's default site and its live deploy (created here for a tenant that has
/// none yet; the caller holds the tenant's lock).
pub(crate) async fn default_site(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
) -> Result<(SiteId, Option<DeploymentId>)> {
    let found: Option<(SiteId, Option<DeploymentId>)> = sqlx::query_as(
        "SELECT id, live_deployment_id FROM sites WHERE tenant_id = $1 AND is_default",
    )
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    match found {
        Some(found) => Ok(found),
        None => {
            let name = SiteName::parse(SiteName::DEFAULT).expect("a valid name");
            Ok((insert_site(tx, tenant, &name, true, None).await?, None))
        }
    }
}

/// A new deploy of the default site: the live one's files except `path`.
async fn next_files_deployment(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    site: SiteId,
    live: Option<DeploymentId>,
    path: &FilePath,
) -> Result<DeploymentId> {
    let id = DeploymentId::new();
    insert_deployment(tx, tenant, site, id, "files", None).await?;
    sqlx::query(
        "INSERT INTO deployment_files \
             (deployment_id, path, tenant_id, sha256, content_type, size, updated_at) \
         SELECT $1, path, tenant_id, sha256, content_type, size, updated_at \
         FROM deployment_files WHERE deployment_id = $2 AND path <> $3",
    )
    .bind(id)
    .bind(live)
    .bind(path.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// Make the new default-site deploy live, and drop the one it replaces when that was
/// made through `/v1/files` too (an uploaded deploy stays for a rollback).
async fn finish_files_deployment(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    site: SiteId,
    id: DeploymentId,
    replaced: Option<DeploymentId>,
    keep: i64,
) -> Result<()> {
    switch_to(tx, site, id, Activation::Now).await?;
    sqlx::query("DELETE FROM deployments WHERE id = $1 AND source = 'files'")
        .bind(replaced)
        .execute(&mut *tx)
        .await?;
    // Switched above, before the replaced deploy could go.
    finish_deployment(tx, tenant, site, id, Activation::Stage, keep).await
}

/// Deploys kept per site when the caller does not say.
pub const DEFAULT_KEPT_DEPLOYMENTS: i64 = 10;

#[cfg(test)]
mod tests {
    use super::compressible;

    #[test]
    fn compressible_types() {
        for t in [
            "text/html; charset=utf-8",
            "text/css",
            "application/javascript",
            "application/json",
            "application/ld+json",
            "application/rss+xml",
            "image/svg+xml",
            "application/wasm",
            "font/ttf",
            "TEXT/PLAIN",
        ] {
            assert!(compressible(t), "{t}");
        }
        for t in [
            "image/png",
            "image/jpeg",
            "font/woff2",
            "application/zip",
            "application/gzip",
            "application/octet-stream",
            "video/mp4",
        ] {
            assert!(!compressible(t), "{t}");
        }
    }
}
