//! The edge's queries: what it loads on start, on a cache miss, and from the change log.
//! Edges only read.

use uuid::Uuid;

use crate::{DeploymentId, Hostname, Result, SiteId, Store, TenantId};

/// One row of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub what: Changed,
}

/// What a change-log row says changed (its `entity`), for an edge to reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// The registration: added, deleted, held, or its status or order changed.
    Domain(Hostname),
    /// Its certificate was installed, renewed or deleted.
    Certificate(Hostname),
    /// Its HTTP-01 challenges were published or withdrawn.
    Challenge(Hostname),
    /// Its live deploy (or canonical hostname) changed, or it was created or deleted.
    Site(SiteId),
    /// A body's compressed variants were stored (hex SHA-256).
    Blob { tenant: TenantId, sha256: String },
    /// A row this release cannot read (a newer release's entity): nothing to reload.
    Unknown,
}

impl Changed {
    fn from_row(r: ChangeRow) -> Option<Change> {
        let what = match (r.entity?.as_str(), r.hostname, r.path, r.site_id) {
            ("domain", Some(h), ..) => Self::Domain(h),
            ("certificate", Some(h), ..) => Self::Certificate(h),
            ("challenge", Some(h), ..) => Self::Challenge(h),
            ("site", _, _, Some(site)) => Self::Site(site),
            ("blob", _, Some(sha256), _) => Self::Blob {
                tenant: r.tenant_id?,
                sha256,
            },
            _ => Self::Unknown,
        };
        Some(Change { seq: r.seq?, what })
    }
}

/// A row of a change-log poll (`seq` and the rest are NULL when the log had nothing new).
#[derive(sqlx::FromRow)]
struct ChangeRow {
    pruned_through: i64,
    seq: Option<i64>,
    entity: Option<String>,
    tenant_id: Option<TenantId>,
    hostname: Option<Hostname>,
    path: Option<String>,
    site_id: Option<SiteId>,
}

/// A site's live deploy and its rules, as the edge knows them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveSite {
    pub id: SiteId,
    pub live_deployment_id: Option<DeploymentId>,
    pub rules: Option<sqlx::types::Json<crate::rules::Rules>>,
    pub canonical_hostname: Option<Hostname>,
    /// Its platform subdomain's label; `None` while its tenant is suspended.
    pub slug: Option<String>,
}

/// The columns of [`LiveSite`] from `sites s` joined with its live deploy `d`.
macro_rules! live_site_columns {
    () => {
        "SELECT s.id, s.live_deployment_id, d.rules, s.canonical_hostname, \
         CASE WHEN s.held THEN NULL ELSE s.slug END AS slug FROM sites s \
         LEFT JOIN deployments d ON d.id = s.live_deployment_id"
    };
}

impl Store {
    /// Every site's live deploy (the edge's map, at start).
    pub async fn live_sites(&self) -> Result<Vec<LiveSite>> {
        Ok(sqlx::query_as(live_site_columns!())
            .fetch_all(&self.pool)
            .await?)
    }

    /// One site's live deploy; `None` when the site is gone.
    pub async fn live_site(&self, site: SiteId) -> Result<Option<LiveSite>> {
        Ok(
            sqlx::query_as(concat!(live_site_columns!(), " WHERE s.id = $1"))
                .bind(site)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

/// A registered hostname as the edge knows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RegisteredName {
    pub hostname: Hostname,
    pub tenant_id: TenantId,
    pub site_id: SiteId,
    /// An ACME order is in flight: the CA may come for an HTTP-01 challenge.
    pub validating: bool,
    /// Still waiting for its DNS (`pending_dns`): a visitor means it may point at us now.
    pub pending: bool,
    /// Getting its first certificate (`issuing`).
    pub issuing: bool,
    /// Served with a certificate (`active`): a canonical name redirects to it only then.
    pub active: bool,
}

/// What the edge needs to serve a hostname over TLS.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServingCertificate {
    pub tenant_id: TenantId,
    pub chain_pem: String,
    pub key_sealed: Vec<u8>,
    pub not_after: time::OffsetDateTime,
}

impl Store {
    /// Every registered hostname that is served (not held: see `admin`) (the edge's allowlist): its tenant and whether an ACME
    /// order is in flight for it.
    pub async fn all_hostnames(&self) -> Result<Vec<RegisteredName>> {
        Ok(sqlx::query_as(
            "SELECT hostname, tenant_id, site_id, order_url IS NOT NULL AS validating, \
                 status = 'pending_dns' AS pending, status = 'issuing' AS issuing, \
                 status = 'active' AS active \
             FROM domains WHERE held IS NULL",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// A visitor reached an edge for `hostname`, still in `pending_dns`: make it due now
    /// and wake the workers (its DNS evidently reaches an edge). Nothing for any other
    /// status (a `failed` domain keeps its CA backoff). True when a check was requested.
    pub async fn nudge_check(&self, hostname: &Hostname) -> Result<bool> {
        let woken: Option<Uuid> = sqlx::query_scalar(
            "WITH d AS (UPDATE domains SET next_attempt_at = now() \
                 WHERE hostname = $1 AND status = 'pending_dns' AND next_attempt_at > now() \
                 RETURNING id) \
             SELECT id FROM d, LATERAL (SELECT pg_notify($2, d.id::text)) n",
        )
        .bind(hostname)
        .bind(crate::WAKE_CHANNEL)
        .fetch_optional(&self.pool)
        .await?;
        Ok(woken.is_some())
    }

    /// One hostname's allowlist entry, if registered.
    pub async fn registered_name(&self, hostname: &Hostname) -> Result<Option<RegisteredName>> {
        Ok(sqlx::query_as(
            "SELECT hostname, tenant_id, site_id, order_url IS NOT NULL AS validating, \
                 status = 'pending_dns' AS pending, status = 'issuing' AS issuing, \
                 status = 'active' AS active \
             FROM domains WHERE hostname = $1 AND held IS NULL",
        )
        .bind(hostname)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The HTTP-01 challenges published for `hostname`, or for every hostname when
    /// `None`: (hostname, token, key authorization).
    pub async fn published_challenges(
        &self,
        hostname: Option<&Hostname>,
    ) -> Result<Vec<(Hostname, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT hostname, token, key_authorization FROM acme_challenges \
             WHERE $1::text IS NULL OR hostname = $1",
        )
        .bind(hostname)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The certificate currently served for a hostname.
    pub async fn serving_certificate(
        &self,
        hostname: &Hostname,
    ) -> Result<Option<ServingCertificate>> {
        Ok(sqlx::query_as(
            "SELECT c.tenant_id, c.chain_pem, c.key_sealed, c.not_after FROM certificates c \
             JOIN domains d ON d.id = c.domain_id WHERE c.hostname = $1 AND d.held IS NULL",
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

    /// One poll of the change log, in one round trip: up to `limit` changes after
    /// `seq`; the changes inside `gaps` (inclusive ranges at or below `seq` that were
    /// skipped: their transactions took a sequence number before a later one but had
    /// not committed when it was read); with `window`, also every change at or below
    /// `seq` written in that recent past (for a reader that does not know its gaps yet,
    /// having just started); and how far the log has been pruned. Oldest first.
    pub async fn poll_changes(
        &self,
        seq: i64,
        limit: i64,
        gaps: &[(i64, i64)],
        window: Option<std::time::Duration>,
    ) -> Result<ChangePoll> {
        let (lo, hi): (Vec<i64>, Vec<i64>) = gaps.iter().copied().unzip();
        let rows: Vec<ChangeRow> = sqlx::query_as(
            "SELECT h.pruned_through, c.seq, c.entity, c.tenant_id, c.hostname, c.path, c.site_id \
             FROM change_log_horizon h LEFT JOIN LATERAL ( \
                 (SELECT seq, entity, tenant_id, hostname, path, site_id FROM changes \
                  WHERE seq > $1 ORDER BY seq LIMIT $2) \
                 UNION \
                 (SELECT ch.seq, ch.entity, ch.tenant_id, ch.hostname, ch.path, ch.site_id \
                  FROM changes ch \
                  JOIN unnest($3::bigint[], $4::bigint[]) AS g(lo, hi) \
                  ON ch.seq BETWEEN g.lo AND g.hi AND ch.seq <= $1) \
                 UNION \
                 (SELECT seq, entity, tenant_id, hostname, path, site_id FROM changes \
                  WHERE $5::float8 IS NOT NULL AND seq <= $1 \
                  AND at > now() - make_interval(secs => $5)) \
             ) c ON true \
             WHERE h.id = 1 ORDER BY c.seq",
        )
        .bind(seq)
        .bind(limit)
        .bind(lo)
        .bind(hi)
        .bind(window.map(|w| w.as_secs_f64()))
        .fetch_all(&self.pool)
        .await?;
        let pruned_through = rows.first().map_or(0, |r| r.pruned_through);
        let changes: Vec<Change> = rows.into_iter().filter_map(Changed::from_row).collect();
        let newer = changes.iter().filter(|c| c.seq > seq).count();
        Ok(ChangePoll {
            pruned_through,
            more: newer as i64 >= limit,
            changes,
        })
    }
}

/// What one poll of the change log found.
#[derive(Debug, Clone)]
pub struct ChangePoll {
    /// The highest sequence number pruned from the log: a reader behind it missed changes.
    pub pruned_through: i64,
    /// Changes after the position (at most the limit) and recent ones at or below it.
    pub changes: Vec<Change>,
    /// The limit was reached: poll again from the new position.
    pub more: bool,
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
