//! Webhooks: tenants' endpoints and the outbox of deliveries (see migration 0016). The
//! rows are written here; rendering, signing and sending are the API crate's.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::limits::lock_tenant;
use crate::{DomainId, EventKind, Hostname, Limit, Result, Store, StoreError, TenantId};

/// NOTIFY channel: deliveries were queued.
pub const WEBHOOKS_CHANNEL: &str = "landlord_webhooks";

/// A test delivery sent on request (`POST /v1/webhooks/{id}/ping`), whatever the
/// subscription.
pub const PING_KIND: &str = "webhook.ping";
/// A hostname taken by another account that proved control of its DNS.
pub const RECLAIMED_KIND: &str = "domain.reclaimed";

/// Every kind a webhook can subscribe to: `domain.<timeline kind>` and `domain.reclaimed`.
pub fn webhook_kinds() -> Vec<String> {
    EventKind::ALL
        .iter()
        .map(|k| format!("domain.{}", k.as_str()))
        .chain([RECLAIMED_KIND.to_owned()])
        .collect()
}

/// The associated data a webhook's secret is sealed with.
pub fn webhook_secret_context(id: Uuid) -> String {
    format!("webhook-secret:{id}")
}

/// A tenant's endpoint, without its secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// Subscribed kinds; empty: all.
    pub events: Vec<String>,
    pub enabled: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

macro_rules! webhook_columns {
    () => {
        "id, url, events, enabled, disabled_at, disabled_reason, created_at"
    };
}

/// Changes to a webhook (`None`: unchanged).
#[derive(Debug, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `true` re-enables a disabled webhook (its waiting deliveries resume).
    pub enabled: Option<bool>,
}

/// One attempt at a delivery.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Attempt {
    pub attempt: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The HTTP status; none when no response came.
    pub status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// A delivery as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: Uuid,
    pub kind: String,
    pub hostname: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    pub attempts: Vec<Attempt>,
}

/// A delivery claimed for an attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub tenant_id: TenantId,
    pub kind: String,
    pub domain_id: Option<DomainId>,
    pub hostname: Option<String>,
    pub message: String,
    pub event_at: OffsetDateTime,
    pub body: Option<String>,
    /// This attempt's number (1 for the first).
    pub attempts: i32,
    pub created_at: OffsetDateTime,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    /// The secret replaced less than a day ago, which signs too.
    pub previous_secret_sealed: Option<Vec<u8>>,
}

/// The delivery `$1` as this attempt (`$2`) claimed it: a process that overran its lease
/// while another claimed the delivery again records its attempt but changes nothing else.
macro_rules! still_ours {
    () => {
        "id = $1 AND attempts = $2 AND status = 'pending'"
    };
}

/// What asking for a ping did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Queued(Uuid),
    /// The previous ping is not finished yet.
    Pending,
    NoWebhook,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration: Duration,
    /// What happens next: `None` when delivered; `Some(Some(wait))` to retry after `wait`;
    /// `Some(None)` when retries are exhausted (the delivery fails and its webhook is
    /// disabled).
    pub retry: Option<Option<Duration>>,
}

impl Store {
    /// Register a webhook (its id chosen by the caller, which sealed the secret under it).
    pub async fn create_webhook(
        &self,
        tenant: TenantId,
        id: Uuid,
        url: &str,
        events: &[String],
        secret_sealed: &[u8],
        max_webhooks: i64,
    ) -> Result<Webhook> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
        if count >= max_webhooks {
            return Err(StoreError::LimitReached {
                limit: Limit::Webhooks,
                max: max_webhooks,
            });
        }
        let hook: Webhook = sqlx::query_as(concat!(
            "INSERT INTO webhooks (id, tenant_id, url, events, secret_sealed) \
             VALUES ($1, $2, $3, $4, $5) RETURNING ",
            webhook_columns!()
        ))
        .bind(id)
        .bind(tenant)
        .bind(url)
        .bind(events)
        .bind(secret_sealed)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(hook)
    }

    /// The tenant's webhooks, oldest first.
    pub async fn webhooks(&self, tenant: TenantId) -> Result<Vec<Webhook>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn webhook(&self, tenant: TenantId, id: Uuid) -> Result<Option<Webhook>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn update_webhook(
        &self,
        tenant: TenantId,
        id: Uuid,
        patch: WebhookPatch,
    ) -> Result<Option<Webhook>> {
        let hook: Option<Webhook> = sqlx::query_as(concat!(
            "UPDATE webhooks SET url = COALESCE($3, url), events = COALESCE($4, events), \
                 enabled = COALESCE($5, enabled), \
                 disabled_at = CASE WHEN $5 THEN NULL WHEN NOT $5 AND enabled THEN now() \
                     ELSE disabled_at END, \
                 disabled_reason = CASE WHEN $5 THEN NULL WHEN NOT $5 AND enabled \
                     THEN 'disabled over the API' ELSE disabled_reason END \
             WHERE tenant_id = $1 AND id = $2 RETURNING ",
            webhook_columns!()
        ))
        .bind(tenant)
        .bind(id)
        .bind(patch.url)
        .bind(patch.events)
        .bind(patch.enabled)
        .fetch_optional(&self.pool)
        .await?;
        if hook.as_ref().is_some_and(|h| h.enabled) {
            self.wake_webhooks().await?;
        }
        Ok(hook)
    }

    pub async fn delete_webhook(&self, tenant: TenantId, id: Uuid) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// A new secret (sealed by the caller); the replaced one signs too for `overlap`.
    /// `false` for no such webhook.
    pub async fn set_webhook_secret(
        &self,
        tenant: TenantId,
        id: Uuid,
        sealed: &[u8],
        overlap: Duration,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE webhooks SET previous_secret_sealed = secret_sealed, \
                 previous_secret_until = now() + make_interval(secs => $4), secret_sealed = $3 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(sealed)
        .bind(overlap.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Queue a test delivery to the webhook (enabled or not: a ping is how one checks an
    /// endpoint before re-enabling it), one at a time per webhook.
    pub async fn ping_webhook(&self, tenant: TenantId, id: Uuid) -> Result<Ping> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM webhooks WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Ok(Ping::NoWebhook);
        }
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_deliveries \
             WHERE webhook_id = $1 AND kind = $2 AND status = 'pending')",
        )
        .bind(id)
        .bind(PING_KIND)
        .fetch_one(&mut *tx)
        .await?;
        if pending {
            return Ok(Ping::Pending);
        }
        let delivery = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, kind, message) \
             VALUES ($1, $2, $3, $4, 'A test delivery, sent on request.')",
        )
        .bind(delivery)
        .bind(id)
        .bind(tenant)
        .bind(PING_KIND)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(WEBHOOKS_CHANNEL)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ping::Queued(delivery))
    }

    async fn wake_webhooks(&self) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(WEBHOOKS_CHANNEL)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The webhook's most recent deliveries, newest first, each with its attempts.
    pub async fn webhook_deliveries(
        &self,
        tenant: TenantId,
        webhook: Uuid,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        type Row = (
            Uuid,
            String,
            Option<String>,
            OffsetDateTime,
            String,
            OffsetDateTime,
            Option<OffsetDateTime>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, kind, hostname, created_at, status, next_attempt_at, delivered_at \
             FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(tenant)
        .bind(webhook)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let attempts: Vec<(Uuid, Attempt)> =
            sqlx::query_as::<_, (Uuid, i32, OffsetDateTime, Option<i32>, Option<String>, i32)>(
                "SELECT delivery_id, attempt, at, status, error, duration_ms FROM webhook_attempts \
             WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
            )
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(d, attempt, at, status, error, duration_ms)| {
                (
                    d,
                    Attempt {
                        attempt,
                        at,
                        status,
                        error,
                        duration_ms,
                    },
                )
            })
            .collect();
        Ok(rows
            .into_iter()
            .map(
                |(id, kind, hostname, created_at, status, next, delivered_at)| Delivery {
                    attempts: attempts
                        .iter()
                        .filter(|(d, _)| *d == id)
                        .map(|(_, a)| a.clone())
                        .collect(),
                    next_attempt_at: (status == "pending").then_some(next),
                    id,
                    kind,
                    hostname,
                    created_at,
                    status,
                    delivered_at,
                },
            )
            .collect())
    }

    /// Claim up to `limit` due deliveries of enabled webhooks for one attempt each, held for
    /// `lease` (a process that dies mid-attempt lets another retry after it).
    pub async fn claim_deliveries(&self, lease: Duration, limit: i64) -> Result<Vec<Due>> {
        Ok(sqlx::query_as(
            "WITH due AS ( \
                 SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.status = 'pending' AND d.next_attempt_at <= now() \
                   AND (d.leased_until IS NULL OR d.leased_until < now()) \
                   AND (w.enabled OR d.kind = $3) \
                 ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED) \
             UPDATE webhook_deliveries d SET attempts = d.attempts + 1, \
                 leased_until = now() + make_interval(secs => $1) \
             FROM due, webhooks w WHERE d.id = due.id AND w.id = d.webhook_id \
             RETURNING d.id, d.webhook_id, d.tenant_id, d.kind, d.domain_id, d.hostname, \
                 d.message, d.event_at, d.body, d.attempts, d.created_at, w.url, w.secret_sealed, \
                 CASE WHEN w.previous_secret_until > now() THEN w.previous_secret_sealed END \
                     AS previous_secret_sealed",
        )
        .bind(lease.as_secs_f64())
        .bind(limit)
        .bind(PING_KIND)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Keep the body of a delivery's first attempt, for every later one.
    pub async fn set_delivery_body(&self, id: Uuid, body: &str) -> Result<()> {
        sqlx::query("UPDATE webhook_deliveries SET body = $2 WHERE id = $1 AND body IS NULL")
            .bind(id)
            .bind(body)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Record attempt `due.attempts` and what follows (see [`Outcome`]).
    pub async fn finish_attempt(&self, due: &Due, outcome: &Outcome) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, status, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(due.id)
        .bind(due.attempts)
        .bind(outcome.status.map(i32::from))
        .bind(&outcome.error)
        .bind(outcome.duration.as_millis().min(i32::MAX as u128) as i32)
        .execute(&mut *tx)
        .await?;
        match outcome.retry {
            None => {
                sqlx::query(concat!(
                    "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), \
                     leased_until = NULL WHERE ",
                    still_ours!()
                ))
                .bind(due.id)
                .bind(due.attempts)
                .execute(&mut *tx)
                .await?;
            }
            Some(Some(wait)) => {
                sqlx::query(concat!(
                    "UPDATE webhook_deliveries SET leased_until = NULL, \
                     next_attempt_at = now() + make_interval(secs => $3) WHERE ",
                    still_ours!()
                ))
                .bind(due.id)
                .bind(due.attempts)
                .bind(wait.as_secs_f64())
                .execute(&mut *tx)
                .await?;
            }
            Some(None) => {
                let failed = sqlx::query(concat!(
                    "UPDATE webhook_deliveries SET status = 'failed', leased_until = NULL WHERE ",
                    still_ours!()
                ))
                .bind(due.id)
                .bind(due.attempts)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if failed && due.kind != PING_KIND {
                    let reason = format!(
                        "disabled after {} failed attempts to deliver {} (the last: {})",
                        due.attempts,
                        due.kind,
                        outcome.error.as_deref().unwrap_or("no answer")
                    );
                    let url: Option<String> = sqlx::query_scalar(
                        "UPDATE webhooks SET enabled = false, disabled_at = now(), \
                         disabled_reason = $2 WHERE id = $1 AND enabled RETURNING url",
                    )
                    .bind(due.webhook_id)
                    .bind(&reason)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(url) = url {
                        crate::admin::tenant_event(
                            &mut tx,
                            due.tenant_id,
                            "webhook_disabled",
                            &format!(
                                "The webhook {} ({url}) was {reason}. Fix the endpoint, send a test with POST /v1/webhooks/{}/ping, then re-enable it (PATCH {{\"enabled\": true}}): deliveries waiting for it resume.",
                                due.webhook_id, due.webhook_id
                            ),
                        )
                        .await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forget finished deliveries older than `age`; how many.
    pub async fn prune_deliveries(&self, age: Duration) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' \
             AND created_at < now() - make_interval(secs => $1)",
        )
        .bind(age.as_secs_f64())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}

/// Queue `domain.reclaimed` for the holder's webhooks (inside the transfer's transaction).
pub(crate) async fn enqueue_reclaimed(
    tx: &mut sqlx::PgConnection,
    holder: TenantId,
    domain: DomainId,
    hostname: &Hostname,
    message: &str,
) -> Result<()> {
    let queued = sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, kind, domain_id, hostname, message) \
         SELECT gen_random_uuid(), id, tenant_id, $2, $3, $4, $5 FROM webhooks \
         WHERE tenant_id = $1 AND enabled AND (cardinality(events) = 0 OR $2 = ANY (events))",
    )
    .bind(holder)
    .bind(RECLAIMED_KIND)
    .bind(domain)
    .bind(hostname.as_str())
    .bind(message)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if queued > 0 {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(WEBHOOKS_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
