//! What one tenant may hold, and what it holds now.
//!
//! Every limit is enforced inside the transaction that would exceed it, under the
//! tenant's row lock (`SELECT … FOR NO KEY UPDATE` on `tenants`), so concurrent requests, from
//! any number of API processes, cannot overshoot it.

use crate::{Result, Store, TenantId};

/// Bytes every stored file costs beyond its body, path and Content-Type (its row, index
/// entries and change-log line): an empty file is not free.
pub const FILE_OVERHEAD_BYTES: i64 = 256;

/// Per-tenant limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    /// The largest single file body.
    pub max_file_bytes: i64,
    /// All files together: bodies, paths, Content-Types and [`FILE_OVERHEAD_BYTES`] each.
    pub quota_bytes: i64,
    /// Files in one deploy.
    pub max_files: i64,
    pub max_domains: i64,
    pub max_sites: i64,
    /// Live API keys.
    pub max_api_keys: i64,
    /// Webhook endpoints.
    pub max_webhooks: i64,
    /// Deploys kept per site (the live one always is).
    pub kept_deployments: i64,
}

impl Default for TenantLimits {
    /// What a small SaaS would pick: 10 MiB per file, 100 MiB per tenant, 10 000 files
    /// per deploy, 100 domains, 50 sites, 20 API keys and 10 webhooks per tenant, 10
    /// deploys kept per site.
    fn default() -> Self {
        Self {
            max_file_bytes: 10 * 1024 * 1024,
            quota_bytes: 100 * 1024 * 1024,
            max_files: 10_000,
            max_domains: 100,
            max_sites: 50,
            max_api_keys: 20,
            max_webhooks: 10,
            kept_deployments: crate::files::DEFAULT_KEPT_DEPLOYMENTS,
        }
    }
}

/// Which count-limit a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Files,
    Domains,
    Sites,
    ApiKeys,
    Webhooks,
}

/// What a tenant holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Usage {
    /// Files of the live deploys of every site.
    pub files: i64,
    /// Bytes counted against the quota.
    pub used_bytes: i64,
    pub domains: i64,
    pub sites: i64,
    /// Live API keys.
    pub api_keys: i64,
}

/// The quota cost of the deploy rows matching the query's `WHERE`, in SQL: path and type
/// bytes plus the fixed overhead each (bodies are counted once, as blobs).
macro_rules! row_cost_sum {
    () => {
        "COALESCE(SUM(octet_length(path) + octet_length(content_type) + 256), 0)::bigint"
    };
}
pub(crate) use row_cost_sum;

/// The quota cost of one file.
pub fn file_cost(path: &str, content_type: &str, body_len: usize) -> i64 {
    body_len as i64 + path.len() as i64 + content_type.len() as i64 + FILE_OVERHEAD_BYTES
}

impl Store {
    /// The caller's current usage.
    pub async fn tenant_usage(&self, tenant: TenantId) -> Result<Usage> {
        let mut conn = self.pool.acquire().await?;
        let (files, domains, sites, api_keys): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM sites s \
                     JOIN deployment_files f ON f.deployment_id = s.live_deployment_id \
                     WHERE s.tenant_id = $1), \
                 (SELECT count(*) FROM domains WHERE tenant_id = $1), \
                 (SELECT count(*) FROM sites WHERE tenant_id = $1), \
                 (SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL)",
        )
        .bind(tenant)
        .fetch_one(&mut *conn)
        .await?;
        Ok(Usage {
            files,
            used_bytes: crate::sites::stored_bytes(&mut conn, tenant).await?,
            domains,
            sites,
            api_keys,
        })
    }
}

/// Take the tenant's row lock for the rest of the transaction: the limit checks and the
/// write they guard are then serialized per tenant. `FOR NO KEY UPDATE`, not `FOR UPDATE`:
/// it must not block the `FOR KEY SHARE` locks that foreign-key checks take (a worker
/// writing a timeline event for this tenant's domain while this transaction waits on that
/// domain's row would otherwise deadlock with it).
pub(crate) async fn lock_tenant(tx: &mut sqlx::PgConnection, tenant: TenantId) -> Result<()> {
    sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE")
        .bind(tenant)
        .execute(tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_overhead_is_the_constant() {
        assert!(row_cost_sum!().contains(&format!("+ {FILE_OVERHEAD_BYTES})")));
        assert_eq!(
            file_cost("a.txt", "text/plain", 0),
            5 + 10 + FILE_OVERHEAD_BYTES
        );
    }
}
