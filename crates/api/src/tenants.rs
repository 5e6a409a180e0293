//! `POST /v1/tenants` (admin).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use landlord_store::TenantName;

use crate::AppState;
use crate::extract::{Admin, Caller, Json};
use crate::problem::Problem;
use crate::views::{TenantCreated, TenantEventList, TenantEventView};

#[derive(Deserialize, ToSchema)]
pub struct NewTenant {
    /// 1 to 200 characters, no control characters, not only whitespace (surrounding
    /// whitespace is trimmed).
    // The pattern states exactly what `create` checks: no control character (Unicode
    // category Cc) and at least one character that is neither a control character nor
    // White_Space (what `str::trim` removes).
    #[schema(
        min_length = 1,
        max_length = 200,
        example = "Acme",
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
}

/// Create a tenant and its first API key (admin token required).
#[utoipa::path(post, path = "/v1/tenants", tag = "admin", operation_id = "create_tenant",
    request_body = NewTenant,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created", body = TenantCreated),
        (status = 422, description = "Invalid name or body shape", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<NewTenant>,
) -> Result<(StatusCode, axum::Json<TenantCreated>), Problem> {
    let name = TenantName::parse(&body.name).map_err(|_| {
        Problem::invalid(
            "invalid-name",
            "The tenant name must be 1 to 200 characters without control characters.",
        )
    })?;
    let (tenant, key) = state.store.create_tenant(&name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TenantCreated {
            id: tenant.id,
            name: tenant.name,
            api_key: key.secret,
        }),
    ))
}

/// The caller's own log, newest first (at most 200): what happened to the account, such
/// as a hostname claimed by another account that proved control of its DNS.
#[utoipa::path(get, path = "/v1/tenant/events", tag = "tenant", operation_id = "tenant_events",
    security(("api_key" = [])),
    responses(
        (status = 200, body = TenantEventList),
        (status = 403, description = "The account is suspended", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn events(
    Caller(tenant): Caller,
    State(state): State<AppState>,
) -> Result<axum::Json<TenantEventList>, Problem> {
    let events = state.store.tenant_events(tenant, 200).await?;
    Ok(axum::Json(TenantEventList {
        events: events.into_iter().map(TenantEventView::from).collect(),
    }))
}
