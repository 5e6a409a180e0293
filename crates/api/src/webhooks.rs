//! `/v1/webhooks`: a tenant's endpoints for domain events (see `delivery` for how they are
//! sent). The secret is shown once, at creation and at rotation, and sealed at rest.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use landlord_store::webhooks::{
    Delivery, Ping, Webhook, WebhookPatch, webhook_kinds, webhook_secret_context,
};

use crate::AppState;
use crate::extract::{Caller, Json, Path, Query};
use crate::problem::Problem;

/// The longest URL accepted.
const MAX_URL: usize = 2048;

/// A kind of event a webhook subscribes to (the schema of `events`' items: one of the
/// known kinds).
pub struct WebhookKind;

impl utoipa::PartialSchema for WebhookKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(webhook_kinds()))
            .description(Some("`domain.<timeline kind>` or `domain.reclaimed`"))
            .into()
    }
}

impl ToSchema for WebhookKind {}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries are POSTed: `https://` and a DNS name whose addresses are public
    /// (resolved and checked on every attempt), at most 2048 characters.
    // The pattern promises what the API accepts: `https://`, a DNS name (no IP literal: the
    // top-level label is letters), an optional port and a path.
    #[schema(
        example = "https://hooks.example.com/landlord",
        max_length = 2048,
        pattern = r"^https://([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$"
    )]
    url: String,
    /// The kinds to deliver (see `WebhookEvent.type`); empty or absent: all.
    #[schema(value_type = Vec<WebhookKind>)]
    #[serde(default)]
    events: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    #[schema(
        max_length = 2048,
        pattern = r"^https://([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$"
    )]
    #[serde(default)]
    url: Option<String>,
    #[schema(value_type = Option<Vec<WebhookKind>>)]
    #[serde(default)]
    events: Option<Vec<String>>,
    /// `true` re-enables a webhook disabled after failures (its waiting deliveries resume);
    /// `false` pauses it.
    #[serde(default)]
    enabled: Option<bool>,
}

/// A webhook, without its secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    id: Uuid,
    url: String,
    events: Vec<String>,
    enabled: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    disabled_at: Option<String>,
    /// Why it was disabled (after persistent failure, or over the API).
    disabled_reason: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events,
            enabled: w.enabled,
            disabled_at: w.disabled_at.map(crate::views::rfc3339),
            disabled_reason: w.disabled_reason,
            created_at: crate::views::rfc3339(w.created_at),
        }
    }
}

/// A new webhook, or a new secret: `secret` is shown only here.
#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    webhook: WebhookView,
    /// `whsec_` + base64: verify `webhook-signature` with it (Standard Webhooks).
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    webhooks: Vec<WebhookView>,
}

/// One attempt at a delivery.
#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    attempt: i32,
    #[schema(value_type = String, format = DateTime)]
    at: String,
    /// The HTTP status of the answer; absent when none came.
    status: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
}

/// A delivery and its attempts.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    /// Also the `webhook-id` header (the same on every attempt).
    id: Uuid,
    #[schema(example = "domain.issued")]
    kind: String,
    hostname: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// `pending`, `delivered` or `failed`.
    status: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    next_attempt_at: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    delivered_at: Option<String>,
    attempts: Vec<AttemptView>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        use crate::views::rfc3339;
        Self {
            id: d.id,
            kind: d.kind,
            hostname: d.hostname,
            created_at: rfc3339(d.created_at),
            status: d.status,
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            delivered_at: d.delivered_at.map(rfc3339),
            attempts: d
                .attempts
                .into_iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    at: rfc3339(a.at),
                    status: a.status,
                    error: a.error,
                    duration_ms: a.duration_ms,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    deliveries: Vec<DeliveryView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// At most this many, newest first (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// A ping was queued.
#[derive(Serialize, ToSchema)]
pub struct PingQueued {
    /// The delivery to look for in `GET /v1/webhooks/{id}/deliveries`.
    delivery_id: Uuid,
}

/// The body every delivery carries (`Content-Type: application/json`), signed as Standard
/// Webhooks: `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`
/// (`v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed with the secret's bytes
/// after `whsec_`).
#[derive(Serialize, ToSchema)]
pub struct WebhookEvent {
    /// `domain.<timeline kind>` (`domain.created`, `domain.dns_verified`, `domain.issued`,
    /// `domain.renewed`, `domain.failed`, `domain.renewal_failed`, `domain.expiry_warning`,
    /// `domain.moved`, `domain.back_active`, …), `domain.reclaimed` (another account proved
    /// control of the hostname, which left this one), or `webhook.ping`.
    #[schema(example = "domain.issued")]
    r#type: String,
    /// When the event happened.
    #[schema(value_type = String, format = DateTime)]
    timestamp: String,
    data: WebhookEventData,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookEventData {
    /// The domain as `GET /v1/domains/{id}` shows it when the delivery is first attempted;
    /// null once it is gone (always for `domain.reclaimed`).
    domain: Option<crate::views::DomainView>,
    domain_id: Option<Uuid>,
    hostname: Option<String>,
    /// The timeline's message.
    message: String,
}

fn no_webhook(id: Uuid) -> Problem {
    Problem::not_found(format!(
        "You have no webhook with id {id} (GET /v1/webhooks lists them)."
    ))
}

/// The URL, checked: a problem `detail` otherwise.
fn check_url(raw: &str, allow_private: bool) -> Result<String, Problem> {
    let invalid = |why: String| Problem::invalid("invalid-url", why);
    if raw.len() > MAX_URL {
        return Err(invalid(format!(
            "The URL is longer than {MAX_URL} characters."
        )));
    }
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| invalid(format!("The URL is not valid: {e}.")))?;
    match (url.scheme(), allow_private) {
        ("https", _) | ("http", true) => {}
        (scheme, _) => {
            return Err(invalid(format!(
                "Webhook URLs must be https:// (not {scheme}://): deliveries carry your domains' details."
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "The URL must not carry credentials: verify deliveries with the signature instead."
                .into(),
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| invalid("The URL has no host.".into()))?;
    if !allow_private {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<std::net::IpAddr>()
            && let Some(why) = crate::ssrf::forbidden(ip)
        {
            return Err(invalid(format!(
                "{ip} is {why}: webhooks only reach public addresses."
            )));
        }
        if host.eq_ignore_ascii_case("localhost") {
            return Err(invalid(format!(
                "{host} is this machine: webhooks only reach public addresses."
            )));
        }
    }
    Ok(url.to_string())
}

fn check_events(events: Vec<String>) -> Result<Vec<String>, Problem> {
    let known = webhook_kinds();
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if !known.contains(&e) {
            return Err(Problem::invalid(
                "invalid-events",
                format!(
                    "{e:?} is not an event kind. Known kinds: {}.",
                    known.join(", ")
                ),
            ));
        }
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

/// The master key, which seals secrets.
fn sealer(state: &AppState) -> Result<&landlord_store::MasterKey, Problem> {
    state.config.master_key.as_ref().ok_or_else(|| {
        Problem::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "Webhooks are not available: this API process has no LANDLORD_MASTER_KEY.",
        )
    })
}

/// Register an endpoint for your domains' events (at most `LANDLORD_TENANT_MAX_WEBHOOKS`).
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", operation_id = "create_webhook",
    request_body = NewWebhook,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = WebhookCreated),
        (status = 403, description = "The account holds the most webhooks allowed, or is suspended", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid URL or event kind", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No master key to seal the secret with", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Json(body): Json<NewWebhook>,
) -> Result<(StatusCode, axum::Json<WebhookCreated>), Problem> {
    let url = check_url(&body.url, state.config.webhooks.allow_private)?;
    let events = check_events(body.events)?;
    let key = sealer(&state)?;
    let id = Uuid::now_v7();
    let secret = crate::delivery::new_secret();
    let sealed = key.seal(secret.as_bytes(), &webhook_secret_context(id));
    let hook = state
        .store
        .create_webhook(
            tenant,
            id,
            &url,
            &events,
            &sealed,
            state.config.limits.max_webhooks,
        )
        .await?;
    tracing::info!(tenant = %tenant, webhook = %id, "webhook registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(WebhookCreated {
            webhook: hook.into(),
            secret,
        }),
    ))
}

/// Your webhooks, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", operation_id = "list_webhooks",
    security(("api_key" = [])),
    responses((status = 200, body = WebhookList)))]
pub async fn list(
    Caller(tenant): Caller,
    State(state): State<AppState>,
) -> Result<axum::Json<WebhookList>, Problem> {
    let hooks = state.store.webhooks(tenant).await?;
    Ok(axum::Json(WebhookList {
        webhooks: hooks.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "get_webhook",
    params(("id" = Uuid, Path, description = "Webhook id")),
    security(("api_key" = [])),
    responses((status = 200, body = WebhookView)))]
pub async fn get(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<WebhookView>, Problem> {
    let hook = state
        .store
        .webhook(tenant, id)
        .await?
        .ok_or_else(|| no_webhook(id))?;
    Ok(axum::Json(hook.into()))
}

/// Change the URL or the kinds, or re-enable (or pause) the webhook.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "update_webhook",
    params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = WebhookUpdate,
    security(("api_key" = [])),
    responses(
        (status = 200, body = WebhookView),
        (status = 422, description = "Invalid URL or event kind", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<WebhookUpdate>,
) -> Result<axum::Json<WebhookView>, Problem> {
    let patch = WebhookPatch {
        url: body
            .url
            .map(|u| check_url(&u, state.config.webhooks.allow_private))
            .transpose()?,
        events: body.events.map(check_events).transpose()?,
        enabled: body.enabled,
    };
    let hook = state
        .store
        .update_webhook(tenant, id, patch)
        .await?
        .ok_or_else(|| no_webhook(id))?;
    Ok(axum::Json(hook.into()))
}

/// Delete a webhook and its deliveries.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook",
    params(("id" = Uuid, Path, description = "Webhook id")),
    security(("api_key" = [])),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Problem> {
    match state.store.delete_webhook(tenant, id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(no_webhook(id)),
    }
}

/// A new secret, shown only in this answer. For the next 24 hours deliveries carry two
/// signatures, with the new secret and the replaced one (Standard Webhooks allows several),
/// so a receiver can switch secrets without rejecting a delivery; then only the new one.
#[utoipa::path(post, path = "/v1/webhooks/{id}/secret", tag = "webhooks", operation_id = "rotate_webhook_secret",
    params(("id" = Uuid, Path, description = "Webhook id")),
    security(("api_key" = [])),
    responses(
        (status = 200, body = WebhookCreated),
        (status = 503, description = "No master key to seal the secret with", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate_secret(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<WebhookCreated>, Problem> {
    let key = sealer(&state)?;
    let secret = crate::delivery::new_secret();
    let sealed = key.seal(secret.as_bytes(), &webhook_secret_context(id));
    let overlap = crate::delivery::SECRET_OVERLAP;
    if !state
        .store
        .set_webhook_secret(tenant, id, &sealed, overlap)
        .await?
    {
        return Err(no_webhook(id));
    }
    let hook = state
        .store
        .webhook(tenant, id)
        .await?
        .ok_or_else(|| no_webhook(id))?;
    Ok(axum::Json(WebhookCreated {
        webhook: hook.into(),
        secret,
    }))
}

/// Queue a `webhook.ping` delivery (also to a disabled webhook: check an endpoint before
/// re-enabling it). Pings are not retried.
#[utoipa::path(post, path = "/v1/webhooks/{id}/ping", tag = "webhooks", operation_id = "ping_webhook",
    params(("id" = Uuid, Path, description = "Webhook id")),
    security(("api_key" = [])),
    responses(
        (status = 202, body = PingQueued),
        (status = 409, description = "The previous ping is not finished yet", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ping(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, axum::Json<PingQueued>), Problem> {
    match state.store.ping_webhook(tenant, id).await? {
        Ping::Queued(delivery_id) => {
            Ok((StatusCode::ACCEPTED, axum::Json(PingQueued { delivery_id })))
        }
        Ping::NoWebhook => Err(no_webhook(id)),
        Ping::Pending => Err(Problem::new(
            StatusCode::CONFLICT,
            "ping-pending",
            "Ping pending",
            "The previous ping to this webhook is not finished yet (GET /v1/webhooks/{id}/deliveries shows it); one ping at a time.",
        )),
    }
}

/// The webhook's recent deliveries, newest first, each with every attempt (kept for
/// `LANDLORD_WEBHOOK_RETENTION` once finished).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "webhook_deliveries",
    params(("id" = Uuid, Path, description = "Webhook id"), DeliveryQuery),
    security(("api_key" = [])),
    responses((status = 200, body = DeliveryList)))]
pub async fn deliveries(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<DeliveryQuery>,
) -> Result<axum::Json<DeliveryList>, Problem> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::invalid(
            "invalid-limit",
            "limit must be between 1 and 200.",
        ));
    }
    if state.store.webhook(tenant, id).await?.is_none() {
        return Err(no_webhook(id));
    }
    let list = state.store.webhook_deliveries(tenant, id, limit).await?;
    Ok(axum::Json(DeliveryList {
        deliveries: list.into_iter().map(Into::into).collect(),
    }))
}
