//! The edge's queries: what it loads on start, on a cache miss, and from the change log.
//! Edges only read.

use uuid::Uuid;

use crate::{Result, Store};

/// One row of the change log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Change {
    pub seq: i64,
    pub entity: String,
    pub tenant_id: Uuid,
    pub hostname: Option<String>,
    pub path: Option<String>,
}

/// What the edge needs to serve a hostname over TLS.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServingCertificate {
    pub tenant_id: Uuid,
    pub chain_pem: String,
    pub key_sealed: Vec<u8>,
    pub not_after: time::OffsetDateTime,
}

impl Store {
    /// Every registered hostname and its tenant (the edge's allowlist).
    pub async fn all_hostnames(&self) -> Result<Vec<(String, Uuid)>> {
        Ok(sqlx::query_as("SELECT hostname, tenant_id FROM domains")
            .fetch_all(&self.pool)
            .await?)
    }

    /// The tenant of one hostname, if registered.
    pub async fn hostname_tenant(&self, hostname: &str) -> Result<Option<Uuid>> {
        Ok(
            sqlx::query_scalar("SELECT tenant_id FROM domains WHERE hostname = $1")
                .bind(hostname)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The certificate currently served for a hostname.
    pub async fn serving_certificate(&self, hostname: &str) -> Result<Option<ServingCertificate>> {
        Ok(sqlx::query_as(
            "SELECT tenant_id, chain_pem, key_sealed, not_after FROM certificates WHERE hostname = $1",
        )
        .bind(hostname)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The newest change sequence number (0 when the log is empty).
    pub async fn latest_change(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT GREATEST(COALESCE(MAX(seq), 0), (SELECT pruned_through FROM change_log_horizon))::bigint FROM changes")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Changes committed recently (in the last `window`) at or below `seq`: a transaction
    /// that took its sequence number before a later one but committed after it, which a
    /// reader following `seq > last` alone would skip.
    pub async fn recent_changes_up_to(
        &self,
        seq: i64,
        window: std::time::Duration,
    ) -> Result<Vec<Change>> {
        Ok(sqlx::query_as(
            "SELECT seq, entity, tenant_id, hostname, path FROM changes \
             WHERE seq <= $1 AND at > now() - make_interval(secs => $2) ORDER BY seq",
        )
        .bind(seq)
        .bind(window.as_secs_f64())
        .fetch_all(&self.pool)
        .await?)
    }

    /// The highest sequence number pruned from the change log (0 if none).
    pub async fn changes_pruned_through(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT pruned_through FROM change_log_horizon WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Delete change-log entries older than `retention`; returns how many. Edges that were
    /// away longer than that reload everything (see [`Store::changes_pruned_through`]).
    pub async fn prune_changes(&self, retention: std::time::Duration) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM changes WHERE at < now() - make_interval(secs => $1) \
                 RETURNING seq), \
             h AS (UPDATE change_log_horizon SET pruned_through = \
                 GREATEST(pruned_through, (SELECT max(seq) FROM gone)) \
                 WHERE id = 1 AND EXISTS (SELECT 1 FROM gone)) \
             SELECT count(*) FROM gone",
        )
        .bind(retention.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// Changes after `seq`, oldest first.
    pub async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>> {
        Ok(sqlx::query_as(
            "SELECT seq, entity, tenant_id, hostname, path FROM changes \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Fleet health computed at scrape time.
#[derive(Debug, Clone, Default)]
pub struct FleetSnapshot {
    pub domains_by_status: Vec<(String, i64)>,
    /// Seconds until the earliest certificate expiry (negative once expired).
    pub earliest_expiry_seconds: Option<f64>,
    /// Certificates whose renew_at has passed.
    pub renewals_overdue: i64,
    /// Certificates expiring within 7 days.
    pub expiring_within_7d: i64,
}

impl Store {
    pub async fn fleet_snapshot(&self) -> Result<FleetSnapshot> {
        let domains_by_status =
            sqlx::query_as("SELECT status, count(*) FROM domains GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?;
        let (earliest, overdue, soon): (Option<f64>, i64, i64) = sqlx::query_as(
            "SELECT EXTRACT(EPOCH FROM MIN(not_after) - now())::float8, \
                 count(*) FILTER (WHERE renew_at < now()), \
                 count(*) FILTER (WHERE not_after < now() + interval '7 days') \
             FROM certificates",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(FleetSnapshot {
            domains_by_status,
            earliest_expiry_seconds: earliest,
            renewals_overdue: overdue,
            expiring_within_7d: soon,
        })
    }
}
