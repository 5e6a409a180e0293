//! Tenant files: the static pages the edge serves.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::limits::{Limit, TenantLimits, file_cost, file_cost_sum, lock_tenant};
use crate::{FilePath, Page, Result, Store, StoreError, TenantId};

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
    /// The precompressed bodies, once a worker computed them for this etag (each only
    /// when smaller than the identity body).
    #[sqlx(flatten)]
    pub variants: Variants,
}

/// A file's compressed bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Variants {
    #[sqlx(rename = "body_br")]
    pub br: Option<Vec<u8>>,
    #[sqlx(rename = "body_gzip")]
    pub gzip: Option<Vec<u8>>,
    #[sqlx(rename = "body_zstd")]
    pub zstd: Option<Vec<u8>>,
}

/// A file whose variants are to be computed (claimed by one worker).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Uncompressed {
    pub tenant_id: TenantId,
    pub path: String,
    pub content_type: String,
    pub etag: String,
    pub body: Vec<u8>,
}

/// NOTIFY channel that wakes workers when a file needs its variants.
pub const COMPRESS_CHANNEL: &str = "landlord_compress";

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

/// Strong ETag: the quoted hex SHA-256 of the content.
pub fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(body)))
}

impl Store {
    /// Create or replace a file. The limit checks and the write happen in one transaction
    /// that holds the tenant's row lock, so concurrent uploads cannot overshoot a limit.
    /// The caller enforces `max_file_bytes` before reading the whole body.
    pub async fn put_file(
        &self,
        tenant: TenantId,
        path: &FilePath,
        content_type: &str,
        body: &[u8],
        limits: TenantLimits,
    ) -> Result<FileMeta> {
        let size = body.len() as i64;
        let needed = file_cost(path.as_str(), content_type, body.len());
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        // Everything but the file being replaced: its old cost is given back.
        let (others, used): (i64, i64) = sqlx::query_as(concat!(
            "SELECT count(*), ",
            file_cost_sum!(),
            " FROM files WHERE tenant_id = $1 AND path <> $2"
        ))
        .bind(tenant)
        .bind(path.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if others >= limits.max_files {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM files WHERE tenant_id = $1 AND path = $2)",
            )
            .bind(tenant)
            .bind(path.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if !exists {
                return Err(StoreError::LimitReached {
                    limit: Limit::Files,
                    max: limits.max_files,
                });
            }
        }
        if used + needed > limits.quota_bytes {
            return Err(StoreError::QuotaExceeded {
                used,
                quota: limits.quota_bytes,
                needed,
            });
        }
        let meta = sqlx::query_as::<_, FileMeta>(
            "INSERT INTO files (tenant_id, path, content_type, body, size, etag) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, path) DO UPDATE SET content_type = excluded.content_type, \
               body = excluded.body, size = excluded.size, etag = excluded.etag, updated_at = now(), \
               body_br = NULL, body_gzip = NULL, body_zstd = NULL, variants_etag = NULL, \
               variants_claimed_at = NULL \
             RETURNING path, size, content_type, etag, updated_at",
        )
        .bind(tenant)
        .bind(path.as_str())
        .bind(content_type)
        .bind(body)
        .bind(size)
        .bind(etag_of(body))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(COMPRESS_CHANNEL)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(meta)
    }

    /// The caller's files by path, `limit` at a time after the path `cursor`.
    pub async fn list_files(
        &self,
        tenant: TenantId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<FileMeta, String>> {
        self.page(
            "SELECT path, size, content_type, etag, updated_at FROM files \
             WHERE tenant_id = $1 AND ($2::text IS NULL OR path > $2) \
             ORDER BY path LIMIT $3",
            tenant,
            cursor.map(str::to_owned),
            limit,
            |f: &FileMeta| f.path.clone(),
        )
        .await
    }

    /// Delete one of the caller's files; false when there was none at that path.
    pub async fn delete_file(&self, tenant: TenantId, path: &FilePath) -> Result<bool> {
        let done = sqlx::query("DELETE FROM files WHERE tenant_id = $1 AND path = $2")
            .bind(tenant)
            .bind(path.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One of the caller's files with its body.
    pub async fn get_file(&self, tenant: TenantId, path: &FilePath) -> Result<Option<StoredFile>> {
        Ok(sqlx::query_as::<_, StoredFile>(
            "SELECT content_type, etag, body, \
                 CASE WHEN variants_etag = etag THEN body_br END AS body_br, \
                 CASE WHEN variants_etag = etag THEN body_gzip END AS body_gzip, \
                 CASE WHEN variants_etag = etag THEN body_zstd END AS body_zstd \
             FROM files WHERE tenant_id = $1 AND path = $2",
        )
        .bind(tenant)
        .bind(path.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Claim the oldest file still without variants for its etag, unless another worker
    /// claimed it less than `stale` ago.
    pub async fn claim_uncompressed(
        &self,
        stale: std::time::Duration,
    ) -> Result<Option<Uncompressed>> {
        Ok(sqlx::query_as::<_, Uncompressed>(
            "UPDATE files f SET variants_claimed_at = now() FROM ( \
                 SELECT tenant_id, path FROM files \
                 WHERE variants_etag IS DISTINCT FROM etag \
                   AND (variants_claimed_at IS NULL \
                        OR variants_claimed_at < now() - make_interval(secs => $1)) \
                 ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED) due \
             WHERE f.tenant_id = due.tenant_id AND f.path = due.path \
             RETURNING f.tenant_id, f.path, f.content_type, f.etag, f.body",
        )
        .bind(stale.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Store the variants computed for `file`; false when the file was replaced or
    /// deleted meanwhile (the new content gets its own).
    pub async fn store_variants(&self, file: &Uncompressed, variants: &Variants) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE files SET body_br = $4, body_gzip = $5, body_zstd = $6, \
                 variants_etag = etag, variants_claimed_at = NULL \
             WHERE tenant_id = $1 AND path = $2 AND etag = $3",
        )
        .bind(file.tenant_id)
        .bind(&file.path)
        .bind(&file.etag)
        .bind(variants.br.as_deref())
        .bind(variants.gzip.as_deref())
        .bind(variants.zstd.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

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
