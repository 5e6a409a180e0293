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
