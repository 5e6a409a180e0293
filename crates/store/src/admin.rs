//! Operator controls: suspending tenants, blocking hostnames, and the audit log.
//!
//! A suspended tenant's domains and a blocked hostname's registration are *held*
//! (`domains.held`): edges stop serving them (the change log tells them within a poll),
//! workers neither issue nor renew for them, and the data stays for an unsuspend.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Hostname, Result, Store, TenantId};

/// A tenant as an operator sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TenantSummary {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub suspended_at: Option<OffsetDateTime>,
    pub suspended_reason: Option<String>,
    pub domains: i64,
}

/// A hostname no tenant may register.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BlockedHostname {
    pub hostname: String,
    /// Every name below it too.
    pub subdomains: bool,
    pub reason: String,
    pub operator: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One operator action.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub action: String,
    pub subject: String,
    pub reason: String,
    pub operator: Option<String>,
}

/// An entry of a tenant's own log (it outlives the tenant's domains).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantEvent {
    pub id: i64,
    pub at: OffsetDateTime,
    pub kind: String,
    pub message: String,
}

/// Why and by whom, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Because<'a> {
    pub reason: &'a str,
    pub operator: Option<&'a str>,
}

/// The columns of [`TenantSummary`], with a tail (`WHERE`, `ORDER BY`).
macro_rules! concat_tenant_summary {
    ($tail:literal) => {
        concat!(
            "SELECT t.id, t.name, t.created_at, t.suspended_at, t.suspended_reason, \
             (SELECT count(*) FROM domains d WHERE d.tenant_id = t.id) AS domains FROM tenants t",
            $tail
        )
    };
}

impl Store {
    /// Every tenant with its domain count, oldest first.
    pub async fn list_tenants(&self) -> Result<Vec<TenantSummary>> {
        Ok(
            sqlx::query_as::<_, TenantSummary>(concat_tenant_summary!(" ORDER BY t.id"))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// One tenant as an operator sees it.
    pub async fn tenant_summary(&self, id: Uuid) -> Result<Option<TenantSummary>> {
        Ok(
            sqlx::query_as::<_, TenantSummary>(concat_tenant_summary!(" WHERE t.id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Suspend a tenant (its API keys answer 403, its domains are held) or lift the
    /// suspension (the domains held for it are served again; blocked ones stay blocked).
    /// `None` when there is no such tenant.
    pub async fn set_tenant_suspended(
        &self,
        id: Uuid,
        suspended: bool,
        why: Because<'_>,
    ) -> Result<Option<TenantSummary>> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query(
            "UPDATE tenants SET \
                 suspended_at = CASE WHEN $2 THEN COALESCE(suspended_at, now()) END, \
                 suspended_reason = CASE WHEN $2 THEN $3 END \
             WHERE id = $1",
        )
        .bind(id)
        .bind(suspended)
        .bind(why.reason)
        .execute(&mut *tx)
        .await?;
        if found.rows_affected() == 0 {
            return Ok(None);
        }
        let (held, action, kind, message) = if suspended {
            (
                "UPDATE domains SET held = 'suspended' WHERE tenant_id = $1 AND held IS NULL",
                "tenant_suspended",
                "suspended",
                "This account was suspended by the platform's operator: its hostnames are not served and its API keys are refused.",
            )
        } else {
            (
                "UPDATE domains SET held = NULL, next_attempt_at = now() \
                 WHERE tenant_id = $1 AND held = 'suspended'",
                "tenant_unsuspended",
                "unsuspended",
                "The suspension of this account was lifted; its hostnames are served again.",
            )
        };
        sqlx::query(held).bind(id).execute(&mut *tx).await?;
        sqlx::query("UPDATE sites SET held = $2 WHERE tenant_id = $1 AND held <> $2")
            .bind(id)
            .bind(suspended)
            .execute(&mut *tx)
            .await?;
        audit(&mut tx, action, &id.to_string(), why).await?;
        tenant_event(&mut tx, TenantId::from_uuid(id), kind, message).await?;
        tx.commit().await?;
        self.tenant_summary(id).await
    }

    /// Block `hostname` (and, with `subdomains`, every name below it) platform-wide: no
    /// tenant may register it, and an existing registration is held.
    pub async fn block_hostname(
        &self,
        hostname: &Hostname,
        subdomains: bool,
        why: Because<'_>,
    ) -> Result<BlockedHostname> {
        let mut tx = self.pool.begin().await?;
        let blocked = sqlx::query_as::<_, BlockedHostname>(
            "INSERT INTO blocked_hostnames (hostname, subdomains, reason, operator) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (hostname) DO UPDATE SET \
                 subdomains = excluded.subdomains, reason = excluded.reason, \
                 operator = excluded.operator, at = now() \
             RETURNING hostname, subdomains, reason, operator, at",
        )
        .bind(hostname.as_str())
        .bind(subdomains)
        .bind(why.reason)
        .bind(why.operator)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE domains SET held = 'blocked' WHERE hostname = $1 \
                 OR ($2 AND right(hostname, length($1) + 1) = '.' || $1)",
        )
        .bind(hostname.as_str())
        .bind(subdomains)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, "hostname_blocked", hostname.as_str(), why).await?;
        tx.commit().await?;
        Ok(blocked)
    }

    /// Lift a block; registrations it held are served again (unless their tenant is
    /// suspended). False when the hostname was not blocked.
    pub async fn unblock_hostname(&self, hostname: &Hostname, why: Because<'_>) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let removed: Option<bool> = sqlx::query_scalar(
            "DELETE FROM blocked_hostnames WHERE hostname = $1 RETURNING subdomains",
        )
        .bind(hostname.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(subdomains) = removed else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE domains d SET held = CASE WHEN t.suspended_at IS NULL THEN NULL \
                 ELSE 'suspended' END, next_attempt_at = now() \
             FROM tenants t WHERE t.id = d.tenant_id AND d.held = 'blocked' \
                 AND (d.hostname = $1 OR ($2 AND right(d.hostname, length($1) + 1) = '.' || $1)) \
                 AND NOT EXISTS (SELECT 1 FROM blocked_hostnames b WHERE b.hostname = d.hostname \
                     OR (b.subdomains AND right(d.hostname, length(b.hostname) + 1) = '.' || b.hostname))",
        )
        .bind(hostname.as_str())
        .bind(subdomains)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, "hostname_unblocked", hostname.as_str(), why).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every block, by hostname.
    pub async fn blocked_hostnames(&self) -> Result<Vec<BlockedHostname>> {
        Ok(sqlx::query_as::<_, BlockedHostname>(
            "SELECT hostname, subdomains, reason, operator, at FROM blocked_hostnames ORDER BY hostname",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest `limit` operator actions, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        Ok(sqlx::query_as::<_, AuditEntry>(
            "SELECT at, action, subject, reason, operator FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The caller's own log, newest first.
    pub async fn tenant_events(&self, tenant: TenantId, limit: i64) -> Result<Vec<TenantEvent>> {
        Ok(sqlx::query_as::<_, TenantEvent>(
            "SELECT id, at, kind, message FROM tenant_events WHERE tenant_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

async fn audit(
    tx: &mut sqlx::PgConnection,
    action: &str,
    subject: &str,
    why: Because<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (action, subject, reason, operator) VALUES ($1, $2, $3, $4)",
    )
    .bind(action)
    .bind(subject)
    .bind(why.reason)
    .bind(why.operator)
    .execute(tx)
    .await?;
    Ok(())
}

/// Append to a tenant's own log (inside the caller's transaction).
pub(crate) async fn tenant_event(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    kind: &str,
    message: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO tenant_events (tenant_id, kind, message) VALUES ($1, $2, $3)")
        .bind(tenant)
        .bind(kind)
        .bind(message)
        .execute(tx)
        .await?;
    Ok(())
}
