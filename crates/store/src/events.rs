//! The timeline of a domain.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, Store, TenantId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub domain_id: Uuid,
    pub at: OffsetDateTime,
    pub kind: String,
    pub message: String,
}

/// Append an event inside the caller's transaction, so the timeline never disagrees with
/// the state change it describes.
pub(crate) async fn record(
    tx: &mut sqlx::PgConnection,
    domain: Uuid,
    tenant: TenantId,
    kind: &str,
    message: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO events (domain_id, tenant_id, kind, message) VALUES ($1, $2, $3, $4)")
        .bind(domain)
        .bind(tenant.0)
        .bind(kind)
        .bind(message)
        .execute(tx)
        .await?;
    Ok(())
}

impl Store {
    /// The newest `limit` events of one of the caller's domains, newest first; `None` when
    /// the domain is not theirs.
    pub async fn domain_events(
        &self,
        tenant: TenantId,
        domain: Uuid,
        limit: u32,
    ) -> Result<Option<Vec<Event>>> {
        if self.get_domain(tenant, domain).await?.is_none() {
            return Ok(None);
        }
        let events = sqlx::query_as::<_, Event>(
            "SELECT id, domain_id, at, kind, message FROM events \
             WHERE domain_id = $1 AND tenant_id = $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(domain)
        .bind(tenant.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(events))
    }
}

impl Store {
    /// Keep timelines bounded: drop events older than `retention`, and all but the newest
    /// `per_domain` of each domain. Returns how many were dropped.
    pub async fn prune_events(
        &self,
        retention: std::time::Duration,
        per_domain: u32,
    ) -> Result<u64> {
        let old = sqlx::query("DELETE FROM events WHERE at < now() - make_interval(secs => $1)")
            .bind(retention.as_secs_f64())
            .execute(&self.pool)
            .await?
            .rows_affected();
        // Only domains over the count are ranked (`events_domain` serves both steps).
        let surplus = sqlx::query(
            "DELETE FROM events e USING ( \
                 SELECT id FROM ( \
                     SELECT id, row_number() OVER (PARTITION BY domain_id ORDER BY id DESC) AS n \
                     FROM events WHERE domain_id IN ( \
                         SELECT domain_id FROM events GROUP BY domain_id HAVING count(*) > $1)) r \
                 WHERE n > $1) x \
             WHERE e.id = x.id",
        )
        .bind(i64::from(per_domain))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(old + surplus)
    }
}
