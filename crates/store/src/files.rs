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
               body = excluded.body, size = excluded.size, etag = excluded.etag, updated_at = now() \
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
            "SELECT content_type, etag, body FROM files WHERE tenant_id = $1 AND path = $2",
        )
        .bind(tenant)
        .bind(path.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }
}
