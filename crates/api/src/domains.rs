//! `/v1/domains`: register, list, show, delete, check now, timeline.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::extract::{Caller, Json, PageQuery, Path, Query};
use crate::problem::Problem;
use crate::views::{DomainList, DomainView, EventList, EventView};
use landlord_store::{DomainId, Hostname, SiteId};

const TIMELINE_LENGTH: u32 = 200;

#[derive(Deserialize, ToSchema)]
pub struct NewDomain {
    /// The hostname to serve, e.g. `status.example.com` (Unicode is accepted), or a
    /// wildcard `*.example.com` (one label; certified through the `dcv_delegation` record
    /// only, so only where DNS-01 is configured). Names that are not valid hostnames, or
    /// are under this platform's own domain, answer 422 with the reason in `detail`.
    #[schema(min_length = 1, example = "status.example.com")]
    hostname: String,
    /// The site it serves (one of yours); the default site when absent.
    #[schema(value_type = Option<Uuid>)]
    #[serde(default)]
    site_id: Option<SiteId>,
}

/// What `PATCH /v1/domains/{id}` changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainPatch {
    /// Serve this site (one of yours) on the domain from now on.
    #[schema(value_type = Uuid)]
    site_id: SiteId,
}

/// Register a hostname. It starts in `pending_dns`; the worker checks DNS right away.
#[utoipa::path(post, path = "/v1/domains", tag = "domains", operation_id = "create_domain",
    request_body = NewDomain,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Registered", body = DomainView),
        (status = 403, description = "The tenant holds the most domains allowed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another tenant (or you) holds this hostname; for another tenant's, `ownership` is the TXT record that proves the caller's control (publish it, then retry)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A claim was looked up in DNS moments ago; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid hostname or body shape, with the reason in `detail`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Json(body): Json<NewDomain>,
) -> Result<(StatusCode, JsonResponse<DomainView>), Problem> {
    let hostname = Hostname::parse(&body.hostname)
        .map_err(|e| Problem::invalid("invalid-hostname", e.to_string()))?;
    if let Some(why) = state.config.hostnames.refusal(&hostname) {
        return Err(Problem::invalid("invalid-hostname", why));
    }
    if hostname.is_wildcard() && state.config.acme_dns_zone.is_none() {
        return Err(Problem::invalid(
            "invalid-hostname",
            format!(
                "{hostname} is a wildcard, and a wildcard certificate can only be obtained through DNS-01 (a delegated _acme-challenge record), which this platform has not configured. Add each hostname instead."
            ),
        ));
    }
    let domain = match state
        .store
        .create_domain(
            tenant,
            &hostname,
            body.site_id,
            state.config.limits.max_domains,
        )
        .await
    {
        Err(landlord_store::StoreError::HostnameTaken(_)) => {
            crate::claims::attempt(&state, tenant, &hostname, body.site_id).await?
        }
        other => other?,
    };
    tracing::info!(domain = %domain.id, %hostname, "domain registered");
    Ok((
        StatusCode::CREATED,
        JsonResponse(DomainView::new(&domain, &state.config)),
    ))
}

/// The caller's domains, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/domains", tag = "domains", operation_id = "list_domains", params(PageQuery<DomainId>),
    security(("api_key" = [])),
    responses(
        (status = 200, body = DomainList),
    ))]
pub async fn list(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Query(params): Query<PageQuery<DomainId>>,
) -> Result<JsonResponse<DomainList>, Problem> {
    let limit = params.limit()?;
    let page = state
        .store
        .list_domains(tenant, limit, params.cursor)
        .await?;
    let domains = page
        .items
        .iter()
        .map(|d| DomainView::new(d, &state.config))
        .collect();
    Ok(JsonResponse(DomainList {
        domains,
        next_cursor: page.next_cursor,
    }))
}

/// Move one of the caller's domains to another of its sites: every edge serves that
/// site's live deploy on it within 2 seconds.
#[utoipa::path(patch, path = "/v1/domains/{id}", tag = "domains", operation_id = "update_domain",
    params(("id" = Uuid, Path, description = "Domain id")),
    request_body = DomainPatch,
    security(("api_key" = [])),
    responses(
        (status = 200, body = DomainView),
        (status = 422, description = "`site_id` names none of your sites, or the body's shape is invalid", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<DomainId>,
    Json(body): Json<DomainPatch>,
) -> Result<JsonResponse<DomainView>, Problem> {
    let domain = state
        .store
        .move_domain(tenant, id, body.site_id)
        .await?
        .ok_or_else(|| no_domain(id))?;
    Ok(JsonResponse(DomainView::new(&domain, &state.config)))
}

/// One of the caller's domains.
#[utoipa::path(get, path = "/v1/domains/{id}", tag = "domains", operation_id = "get_domain",
    params(("id" = Uuid, Path, description = "Domain id")),
    security(("api_key" = [])),
    responses(
        (status = 200, body = DomainView),
    ))]
pub async fn get(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<DomainId>,
) -> Result<JsonResponse<DomainView>, Problem> {
    let domain = state
        .store
        .get_domain(tenant, id)
        .await?
        .ok_or_else(|| no_domain(id))?;
    Ok(JsonResponse(DomainView::new(&domain, &state.config)))
}

/// Remove a domain from any status; every edge stops serving it within seconds.
#[utoipa::path(delete, path = "/v1/domains/{id}", tag = "domains", operation_id = "delete_domain",
    params(("id" = Uuid, Path, description = "Domain id")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
    ))]
pub async fn delete(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<DomainId>,
) -> Result<StatusCode, Problem> {
    if state.store.delete_domain(tenant, id).await? {
        tracing::info!(domain = %id, "domain deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_domain(id))
    }
}

/// Re-check DNS now instead of waiting for the next retry; accepted once per a few
/// seconds per domain (429 with `Retry-After` otherwise).
#[utoipa::path(post, path = "/v1/domains/{id}/check", tag = "domains", operation_id = "check_domain",
    params(("id" = Uuid, Path, description = "Domain id")),
    security(("api_key" = [])),
    responses(
        (status = 202, body = DomainView),
        (status = 429, description = "A check of this domain was requested moments ago; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn check(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<DomainId>,
) -> Result<(StatusCode, JsonResponse<DomainView>), Problem> {
    let domain = state
        .store
        .request_check(tenant, id, state.config.check_interval)
        .await?
        .ok_or_else(|| no_domain(id))?;
    Ok((
        StatusCode::ACCEPTED,
        JsonResponse(DomainView::new(&domain, &state.config)),
    ))
}

/// The domain's timeline, newest first.
#[utoipa::path(get, path = "/v1/domains/{id}/events", tag = "domains", operation_id = "domain_events",
    params(("id" = Uuid, Path, description = "Domain id")),
    security(("api_key" = [])),
    responses(
        (status = 200, body = EventList),
    ))]
pub async fn events(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<DomainId>,
) -> Result<JsonResponse<EventList>, Problem> {
    let events = state
        .store
        .domain_events(tenant, id, TIMELINE_LENGTH)
        .await?
        .ok_or_else(|| no_domain(id))?;
    Ok(JsonResponse(EventList {
        events: events.iter().map(EventView::from).collect(),
    }))
}

fn no_domain(id: DomainId) -> Problem {
    Problem::not_found(format!("You have no domain with id {id}."))
}
