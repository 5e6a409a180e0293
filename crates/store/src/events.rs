//! The timeline of a domain.

use time::OffsetDateTime;

use crate::{DomainId, Result, Store, TenantId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub domain_id: DomainId,
    pub at: OffsetDateTime,
    #[sqlx(try_from = "String")]
    pub kind: EventKind,
    pub message: String,
}

/// What a timeline entry is about. Stored and served as its `snake_case` name, the
/// README's table of event kinds; shared by the API (which writes `created` and
/// `check_requested`), the worker (everything else) and the views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Created,
    CheckRequested,
    DnsProblem,
    DnsVerified,
    OrderPlaced,
    ChallengeReady,
    Issued,
    Renewed,
    Failed,
    RenewalFailed,
    ExpiryWarning,
    Queued,
    RenewalWindow,
    RateLimited,
    DnsSlow,
    OrderDropped,
    DnsChanged,
    Moved,
    BackActive,
}

impl EventKind {
    pub const ALL: [EventKind; 19] = [
        Self::Created,
        Self::CheckRequested,
        Self::DnsProblem,
        Self::DnsVerified,
        Self::OrderPlaced,
        Self::ChallengeReady,
        Self::Issued,
        Self::Renewed,
        Self::Failed,
        Self::RenewalFailed,
        Self::ExpiryWarning,
        Self::Queued,
        Self::RenewalWindow,
        Self::RateLimited,
        Self::DnsSlow,
        Self::OrderDropped,
        Self::DnsChanged,
        Self::Moved,
        Self::BackActive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::CheckRequested => "check_requested",
            Self::DnsProblem => "dns_problem",
            Self::DnsVerified => "dns_verified",
            Self::OrderPlaced => "order_placed",
            Self::ChallengeReady => "challenge_ready",
            Self::Issued => "issued",
            Self::Renewed => "renewed",
            Self::Failed => "failed",
            Self::RenewalFailed => "renewal_failed",
            Self::ExpiryWarning => "expiry_warning",
            Self::Queued => "queued",
            Self::RenewalWindow => "renewal_window",
            Self::RateLimited => "rate_limited",
            Self::DnsSlow => "dns_slow",
            Self::OrderDropped => "order_dropped",
            Self::DnsChanged => "dns_changed",
            Self::Moved => "moved",
            Self::BackActive => "back_active",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for EventKind {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event kind {s:?}"))
    }
}

/// A timeline entry about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub message: String,
}

impl NewEvent {
    pub fn new(kind: EventKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Append an event inside the caller's transaction, so the timeline never disagrees with
/// the state change it describes.
pub(crate) async fn record(
    tx: &mut sqlx::PgConnection,
    domain: DomainId,
    tenant: TenantId,
    kind: EventKind,
    message: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO events (domain_id, tenant_id, kind, message) VALUES ($1, $2, $3, $4)")
        .bind(domain)
        .bind(tenant)
        .bind(kind.as_str())
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
        domain: DomainId,
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
        .bind(tenant)
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

#[cfg(test)]
mod tests {
    use super::EventKind;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::try_from(kind.as_str().to_owned()), Ok(kind));
        }
        assert!(EventKind::try_from("nonsense".to_owned()).is_err());
    }
}
