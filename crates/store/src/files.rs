//! Tenant files: the static pages the edge serves.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{FilePath, Result, Store, StoreError, TenantId};

/// Per-file and per-tenant size limits, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct FileLimits {
    pub max_file_bytes: i64,
    pub quota_bytes: i64,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 10 * 1024 * 1024,
            quota_bytes: 100 * 1024 * 1024,
        }
    }
}

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
}

/// Strong ETag: the quoted hex SHA-256 of the content.
pub fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(body)))
}

impl Store {
    /// Create or replace a file. The quota check and the write happen in one transaction
    /// that holds the tenant's row lock, so concurrent uploads cannot overshoot the quota.
    /// The caller enforces `max_file_bytes` before reading the whole body.
    pub async fn put_file(
        &self,
        tenant: TenantId,
        path: &FilePath,
        content_type: &str,
        body: &[u8],
        limits: FileLimits,
    ) -> Result<FileMeta> {
        let size = body.len() as i64;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?;
        let (used,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(SUM(size), 0)::bigint FROM files WHERE tenant_id = $1 AND path <> $2",
        )
        .bind(tenant.0)
        .bind(path.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if used + size > limits.quota_bytes {
            return Err(StoreError::QuotaExceeded {
                used,
                quota: limits.quota_bytes,
                needed: size,
            });
        }
        let meta = sqlx::query_as::<_, FileMeta>(
            "INSERT INTO files (tenant_id, path, content_type, body, size, etag) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, path) DO UPDATE SET content_type = excluded.content_type, \
               body = excluded.body, size = excluded.size, etag = excluded.etag, updated_at = now() \
             RETURNING path, size, content_type, etag, updated_at",
        )
        .bind(tenant.0)
        .bind(path.as_str())
        .bind(content_type)
        .bind(body)
        .bind(size)
        .bind(etag_of(body))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(meta)
    }

    /// All of the caller's files, by path.
    pub async fn list_files(&self, tenant: TenantId) -> Result<Vec<FileMeta>> {
        Ok(sqlx::query_as::<_, FileMeta>(
            "SELECT path, size, content_type, etag, updated_at FROM files \
             WHERE tenant_id = $1 ORDER BY path",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Bytes used by the caller's files.
    pub async fn files_usage(&self, tenant: TenantId) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(SUM(size), 0)::bigint FROM files WHERE tenant_id = $1",
        )
        .bind(tenant.0)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Delete one of the caller's files; false when there was none at that path.
    pub async fn delete_file(&self, tenant: TenantId, path: &FilePath) -> Result<bool> {
        let done = sqlx::query("DELETE FROM files WHERE tenant_id = $1 AND path = $2")
            .bind(tenant.0)
            .bind(path.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One of the caller's files with its body.
    pub async fn get_file(&self, tenant: TenantId, path: &FilePath) -> Result<Option<StoredFile>> {
        Ok(sqlx::query_as::<_, StoredFile>(
            "SELECT content_type, etag, body FROM files WHERE tenant_id = $1 AND path = $2",
        )
        .bind(tenant.0)
        .bind(path.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }
}
