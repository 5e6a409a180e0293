//! Reclaiming a hostname another tenant holds: whoever controls its DNS decides.
//!
//! A tenant asking for a held hostname gets a claim with a TXT value of its own. Once that
//! value is published at `_landlord.<hostname>` and the holder's is not, the hostname
//! moves: the holder's domain goes (the edges stop serving its pages), the claimant's is
//! created with its ownership proved, and the holder reads why in its own log, without
//! learning who claimed it.

use std::time::Duration;

use time::OffsetDateTime;

use crate::{Domain, DomainId, Hostname, Result, SiteId, Store, StoreError, TenantId};

/// A claim on a hostname another tenant holds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claim {
    /// The value the claimant publishes at `_landlord.<hostname>`.
    pub token: String,
    /// Made by this request (nothing to look up yet).
    pub new: bool,
    /// The holder's own TXT value (its proof must be gone for the claim to win).
    pub holder_token: String,
    pub holder_domain: DomainId,
    /// When the API last looked the claim up in DNS.
    pub checked_at: Option<OffsetDateTime>,
}

impl Store {
    /// Open (or find) `tenant`'s claim on `hostname`, held by another tenant. `None` when
    /// nobody else holds it (any more).
    pub async fn open_claim(&self, tenant: TenantId, hostname: &Hostname) -> Result<Option<Claim>> {
        Ok(sqlx::query_as::<_, Claim>(
            "WITH h AS (SELECT id, ownership_token FROM domains \
                 WHERE hostname = $2 AND tenant_id <> $1), \
             c AS (INSERT INTO claims (tenant_id, hostname) SELECT $1, $2 FROM h \
                 ON CONFLICT (tenant_id, hostname) DO UPDATE SET hostname = excluded.hostname \
                 RETURNING token, xmax = 0 AS new, checked_at) \
             SELECT c.token, c.new, h.ownership_token AS holder_token, h.id AS holder_domain, \
                 c.checked_at FROM c, h",
        )
        .bind(tenant)
        .bind(hostname.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Record a DNS lookup for the claim unless one ran less than `interval` ago; the wait
    /// otherwise (claims are looked up no more often than "check now" runs).
    pub async fn claim_lookup_due(
        &self,
        tenant: TenantId,
        hostname: &Hostname,
        interval: Duration,
    ) -> Result<Result<(), Duration>> {
        let wait: Option<f64> = sqlx::query_scalar(
            "WITH old AS (SELECT checked_at FROM claims WHERE tenant_id = $1 AND hostname = $2), \
             u AS (UPDATE claims SET checked_at = now() WHERE tenant_id = $1 AND hostname = $2 \
                 AND (checked_at IS NULL OR checked_at <= now() - make_interval(secs => $3)) \
                 RETURNING 1) \
             SELECT CASE WHEN EXISTS (SELECT 1 FROM u) THEN NULL ELSE \
                 GREATEST(0, EXTRACT(EPOCH FROM (SELECT checked_at FROM old) \
                     + make_interval(secs => $3) - now()))::float8 END",
        )
        .bind(tenant)
        .bind(hostname.as_str())
        .bind(interval.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(match wait {
            None => Ok(()),
            Some(secs) => Err(Duration::from_secs_f64(secs)),
        })
    }

    /// The claim won: move `hostname` from the holder's domain `from` to `tenant`, in one
    /// transaction (the holder's domain, certificate and timeline go; the edges hear of it
    /// through the change log), and tell the holder in its own log.
    pub async fn transfer_domain(
        &self,
        hostname: &Hostname,
        from: DomainId,
        tenant: TenantId,
        site: Option<SiteId>,
        max_domains: i64,
    ) -> Result<Domain> {
        let mut tx = self.pool.begin().await?;
        let holder: Option<TenantId> = sqlx::query_scalar(
            "DELETE FROM domains WHERE id = $1 AND hostname = $2 RETURNING tenant_id",
        )
        .bind(from)
        .bind(hostname.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(holder) = holder else {
            // Deleted or moved meanwhile: the caller retries as a plain registration.
            return Err(StoreError::HostnameTaken(hostname.to_string()));
        };
        let told = format!(
            "Another account proved control of {hostname} through its DNS (the TXT record {}), so {hostname} was removed from this account and is no longer served for it. To take it back, publish the value a new registration attempt gives you there and remove the other one.",
            crate::ownership_record_name(hostname.as_str())
        );
        crate::admin::tenant_event(&mut tx, holder, "hostname_claimed", &told).await?;
        crate::webhooks::enqueue_reclaimed(&mut tx, holder, from, hostname, &told).await?;
        sqlx::query("DELETE FROM claims WHERE tenant_id = $1 AND hostname = $2")
            .bind(tenant)
            .bind(hostname.as_str())
            .execute(&mut *tx)
            .await?;
        let new = crate::domains::NewDomain {
            tenant,
            hostname,
            site,
            verified: true,
        };
        let domain = crate::domains::insert_domain(
            &mut tx,
            new,
            max_domains,
            &format!(
                "{hostname} was claimed: its DNS proved control (TXT {}). Waiting for its DNS to point at us.",
                crate::ownership_record_name(hostname.as_str())
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(domain)
    }
}
